"""Mapping a message *now*, for the console: the Bundle, the issues, an explanation.

The detail page and the playground show what the mapper makes of a message with the
profiles live at this moment (which may differ from what was published, after a profile
reload — that is the point of looking). Mapping errors are caught and shown as one line
naming the location; nothing here raises for bad input.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import mappers
from mappers.errors import Hl7gwError, MessageError
from mappers.profiles import Profile, ProfileSet

AUTO = "auto"  # playground: pick the profile from MSH like the gateway does
NONE = ""  # playground: no profile


@dataclass
class MappingView:
    """What the mapper made of one message (or why it made nothing)."""

    profile: str | None
    timezone: str
    bundle: dict[str, Any] | None = None
    issues: list[dict[str, str]] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    explanation: str | None = None
    error: str | None = None

    @property
    def bundle_json(self) -> str:
        """The Bundle, pretty-printed (empty when mapping failed)."""
        return json.dumps(self.bundle, indent=2, ensure_ascii=False) if self.bundle else ""

    def as_json(self) -> dict[str, Any]:
        """The view as a JSON-able dict (for the API and the playground's script)."""
        return {"profile": self.profile, "timezone": self.timezone, "bundle": self.bundle,
                "issues": self.issues, "unmapped": self.unmapped,
                "explanation": self.explanation, "error": self.error}


def describe_error(exc: Exception) -> str:
    """One line: ``RequiredFieldMissing at PID-3: text``."""
    if isinstance(exc, MessageError):
        where = f" at {exc.location}" if exc.location else ""
        return f"{type(exc).__name__}{where}: {exc.text}"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"


def pick_profile(profiles: ProfileSet, text: str, choice: str) -> Profile | None:
    """``auto``: as the gateway would; ``""``: none; else the named profile (may raise)."""
    if choice == AUTO:
        return profiles.select_text(text)
    if choice == NONE:
        return None
    return profiles.get(choice)


def map_text(text: str, *, profile: Profile | None, fallback_tz: str,
             explain: bool = False) -> MappingView:
    """Convert ``text`` with ``profile``; zone: the profile's, else ``fallback_tz``."""
    tz = (profile.timezone if profile is not None else None) or fallback_tz
    view = MappingView(profile.name if profile is not None else None, tz)
    try:
        result = mappers.convert(text, default_tz=tz, profile=profile)
        if explain:
            view.explanation = mappers.explain(text, default_tz=tz, profile=profile)
    except Hl7gwError as exc:
        view.error = describe_error(exc)
        return view
    except Exception as exc:  # noqa: BLE001 - a mapper bug is shown, not raised
        view.error = f"internal mapping error ({type(exc).__name__})"
        return view
    view.bundle = result.bundle
    view.issues = [asdict(i) for i in result.issues]
    view.unmapped = list(result.unmapped)
    return view


def parse_summary(summary: str) -> dict[str, Any]:
    """A row's stored summary JSON as ``{"issues": [...], "unmapped": [...], "profile": ...}``
    (the sender profile it was mapped with, None when none; absent from older rows)."""
    try:
        data = json.loads(summary or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    profile = data.get("profile")
    return {"issues": list(data.get("issues") or []),
            "unmapped": list(data.get("unmapped") or []),
            "profile": profile if isinstance(profile, str) else None}
