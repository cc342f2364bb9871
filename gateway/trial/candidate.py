"""A changed (or new) profile, checked, and the profile set it would make live.

The candidate set is the live set with one file replaced or added: the file of the loaded
profile with the same name, else ``<name>.yaml``. Building it runs the same loader the
gateway runs on a reload, so a candidate that builds here is one a reload accepts (unless
the folder changes in between, which ``Candidate.generation`` lets the caller notice).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import GatewayError
from mappers.errors import ProfileError
from mappers.profiles import Profile, ProfileSet
from mappers.profiles.loading import build_profile

MAX_PROFILE_BYTES = 256 * 1024  # a profile is a page of YAML; anything bigger is a mistake
DRAFT_SUFFIX = ".draft"  # sunlab.yaml.draft: in the profiles folder, never loaded
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}")


class TrialError(GatewayError):
    """A trial cannot run or be applied as asked; the message says what to change."""


@dataclass(frozen=True)
class Candidate:
    """A checked profile and the set it would make live (nothing written yet)."""

    text: str
    profile: Profile  # as built inside ``proposed``
    target: str  # the file in the profiles folder it would be written to
    replaces: Profile | None  # the live profile it replaces (same name), if any
    current: ProfileSet
    proposed: ProfileSet
    generation: int | None = None  # the live set's generation it was checked against

    @property
    def name(self) -> str:
        """The profile's name."""
        return self.profile.name

    def affects(self, application: str, facility: str) -> bool:
        """Whether messages from this MSH-3.1 / MSH-4.1 may map differently (any version)."""
        for p in (self.profile, self.replaces):
            if p is None:
                continue
            app, fac, _ = p.keys
            if (app is None or application in app) and (fac is None or facility in fac):
                return True
        return False


def make_candidate(text: str, current: ProfileSet, *, label: str = "candidate.yaml",
                   origin: str = "<profiles>", generation: int | None = None) -> Candidate:
    """Check ``text`` as a profile and build the set with it in place.

    ``label`` names the text in error messages (the file given, or ``pasted.yaml``);
    ``origin`` is the profiles folder (what the live set's paths start with). Raises
    ``ProfileError`` (``file:line: field: what is wrong``) or ``TrialError``.
    """
    if len(text.encode("utf-8", "replace")) > MAX_PROFILE_BYTES:
        raise TrialError(f"{label}: larger than {MAX_PROFILE_BYTES // 1024} KiB; "
                         "a profile is one sender's differences, not a spec set")
    if not text.strip():
        raise ProfileError(f"{label}:1: the profile is empty: write profile: NAME, match: ...")
    alone = build_profile(label, text)  # its own mistakes, named after the given file
    old = next((p for p in current.profiles if p.name == alone.name), None)
    target = Path(old.path).name if old is not None else f"{alone.name}.yaml"
    if old is None and target in current.sources:
        raise TrialError(f"{label}: profile {alone.name!r} would be written to {target}, "
                         "which holds another profile; rename the profile")
    proposed = ProfileSet.from_sources({**current.sources, target: text}, origin)
    return Candidate(text, proposed.get(alone.name), target, old, current, proposed,
                     generation)


def check_file_name(name: str) -> str:
    """A bare file name inside the profiles folder (no path), or ``TrialError``."""
    if not _FILE_NAME.fullmatch(name) or ".." in name:
        raise TrialError(f"{name!r} is not a file name in the profiles folder "
                         "(letters, digits, . _ -; no folders)")
    return name


def drafts(directory: Path | None) -> list[str]:
    """Files of the profiles folder the gateway does not load: ``*.draft`` (sorted)."""
    if directory is None or not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir()
                  if p.is_file() and p.name.endswith(DRAFT_SUFFIX) and _FILE_NAME.fullmatch(p.name))
