"""A folder of profiles as one immutable set, and choosing the profile for a message.

The most specific match on MSH-3, MSH-4 and MSH-12 wins; profiles that cannot be told
apart (one name twice, or equally specific matches some message fits both of) are refused
when the set loads, so a choice is never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mappers.errors import ProfileError
from mappers.profiles.loading import Profile, build_profile


@dataclass(frozen=True)
class ProfileSet:
    """Every profile of a folder, ready to select by sender; immutable (reload = new set)."""

    profiles: tuple[Profile, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)  # file name -> YAML text

    @classmethod
    def load(cls, directory: Path) -> ProfileSet:
        """Load ``directory/*.yaml``; a ``ProfileError`` lists every problem found."""
        if not directory.is_dir():
            raise ProfileError(f"{directory}: profiles folder not found")
        sources: dict[str, str] = {}
        for path in sorted(directory.glob("*.yaml")):
            try:
                sources[path.name] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ProfileError(f"{path}:1: cannot read: {exc}") from None
        return cls.from_sources(sources, str(directory))

    @classmethod
    def from_sources(cls, sources: Mapping[str, str], origin: str = "<profiles>") -> ProfileSet:
        """Build from file name -> text (what ``load`` read): how workers get a snapshot."""
        errors: list[str] = []
        loaded: list[Profile] = []
        for name in sorted(sources):
            path = f"{origin}/{name}"
            try:
                loaded.append(build_profile(path, sources[name]))
            except ProfileError as exc:
                errors.append(str(exc))
        errors += _clashes(loaded)
        if errors:
            raise ProfileError("\n".join(errors))
        order = sorted(loaded, key=lambda p: -p.specificity)  # stable: file order in ties
        return cls(tuple(order), dict(sources))

    def names(self) -> list[str]:
        """Profile names, in file order."""
        return sorted((p.name for p in self.profiles), key=lambda n: self._by_name()[n].path)

    def get(self, name: str) -> Profile:
        """The profile called ``name``."""
        found = self._by_name().get(name)
        if found is None:
            known = ", ".join(self.names()) or "none loaded"
            raise ProfileError(f"no profile named {name!r}; known: {known}")
        return found

    def _by_name(self) -> dict[str, Profile]:
        return {p.name: p for p in self.profiles}

    def select(self, application: str, facility: str, version: str) -> Profile | None:
        """The most specific profile for this sender and version, or None."""
        for profile in self.profiles:
            if profile.matches(application, facility, version):
                return profile
        return None

    def select_text(self, text: str) -> Profile | None:
        """``select`` with MSH-3, MSH-4 and MSH-12 read from the message text."""
        if not self.profiles:
            return None
        app, fac, version = msh_sender(text)
        return self.select(app, fac, version)


EMPTY_PROFILES = ProfileSet()


def msh_sender(text: str) -> tuple[str, str, str]:
    """(MSH-3.1, MSH-4.1, MSH-12.1) of a message, "" where absent; no full parse."""
    start = text.find("MSH")
    if start < 0 or len(text) < start + 8:
        return "", "", ""
    sep = text[start + 3]
    end = len(text)
    for stop in ("\r", "\n"):
        at = text.find(stop, start)
        if 0 <= at < end:
            end = at
    fields = text[start:end].split(sep)
    comp = fields[1][:1] if len(fields) > 1 else "^"

    def first(n: int) -> str:
        return fields[n].split(comp)[0].strip() if len(fields) > n and comp else ""

    return first(2), first(3), first(11)



def _clashes(profiles: list[Profile]) -> list[str]:
    """Profiles that cannot be told apart are refused: one name used twice, or two equally
    specific matches that some message fits both of (which one applies would be a guess)."""
    out: list[str] = []
    names: dict[str, Profile] = {}
    for i, p in enumerate(profiles):
        if p.name in names:
            out.append(f"{p.path}:1: profile: name {p.name!r} is also used by "
                       f"{names[p.name].path}")
        names.setdefault(p.name, p)
        for q in profiles[:i]:
            if q.specificity != p.specificity:
                continue  # the more specific one wins: no guess
            both = _overlap(p, q)
            if both is None:
                continue
            if p.keys == q.keys:
                out.append(f"{p.path}:1: match: the same match as {q.path} "
                           f"({p.describe_match()}): which one applies would be a guess")
            else:
                out.append(f"{p.path}:1: match: a message from {both} fits both this and "
                           f"{q.path}, equally specific: narrow one, or add a profile that "
                           "names that combination")
            break
    return out


def _overlap(p: Profile, q: Profile) -> str | None:
    """``application=A facility=X version=*`` that both fit, or None when no message does."""
    parts = []
    for label, a, b in zip(("application", "facility", "version"), p.keys, q.keys,
                           strict=True):
        if a is None or b is None:
            common = b if a is None else a
            shown = "*" if common is None else sorted(common)[0]
        else:
            shared = a & b
            if not shared:
                return None
            shown = sorted(shared)[0]
        parts.append(f"{label}={shown}")
    return " ".join(parts)


