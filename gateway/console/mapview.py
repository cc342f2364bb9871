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

from gateway.prepare import Prepared, convert, describe, prepare, prepare_text
from gateway.prepare import explain as explain_prepared
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
    """One line: ``RequiredFieldMissing at PID-3: text`` (``gateway.prepare.describe``)."""
    return describe(exc)


def pick_profile(profiles: ProfileSet, text: str, choice: str) -> Profile | None:
    """``auto``: as the gateway would; ``""``: none; else the named profile (may raise)."""
    if choice == AUTO:
        return prepare_text(text, profiles=profiles).profile
    if choice == NONE:
        return None
    return profiles.get(choice)


def map_text(text: str, *, profile: Profile | None, fallback_tz: str,
             explain: bool = False) -> MappingView:
    """Convert ``text`` with ``profile``; zone: the profile's, else ``fallback_tz``."""
    return map_prepared(prepare_text(text, profile=profile, default_timezone=fallback_tz),
                        explain=explain)


def map_prepared(prepared: Prepared, *, explain: bool = False) -> MappingView:
    """Convert a message prepared by ``gateway.prepare``, as the gateway's worker does."""
    profile = prepared.profile
    view = MappingView(profile.name if profile is not None else None, prepared.timezone)
    try:
        result = convert(prepared)
        if explain:
            view.explanation = explain_prepared(prepared)
    except Hl7gwError as exc:
        view.error = describe(exc)
        return view
    except Exception as exc:  # noqa: BLE001 - a mapper bug is shown, not raised
        view.error = f"internal mapping error ({type(exc).__name__})"
        return view
    view.bundle = result.bundle
    view.issues = [asdict(i) for i in result.issues]
    view.unmapped = list(result.unmapped)
    return view


def map_raw(raw: bytes, *, profiles: ProfileSet, charset: str | None, timezone: str | None,
            default_charset: str, default_timezone: str) -> tuple[str, str, MappingView]:
    """A stored message's (text, charset, mapping now): ``gateway.prepare`` as the worker.

    ``charset`` and ``timezone`` stand at the sender level (the row's, or the listener's
    sender entry for a refused message). Bytes that cannot be prepared (an empty frame)
    are shown decoded with the default charset, the mapping saying why there is none.
    """
    try:
        prepared = prepare(raw, profiles=profiles, charset=charset, timezone=timezone,
                           default_charset=default_charset,
                           default_timezone=default_timezone, errors="replace")
    except MessageError as exc:
        view = MappingView(None, timezone or default_timezone, error=describe(exc))
        return raw.decode(default_charset, "replace"), default_charset, view
    return prepared.text, prepared.charset, map_prepared(prepared)


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
