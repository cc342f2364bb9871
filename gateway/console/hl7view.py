"""A raw HL7 v2 message shown segment by segment, each field with its standard name.

Field names come from hl7apy's reference tables for the message's version (MSH-12),
imported lazily and cached per (segment, version): hl7apy is slow to import and to query,
which is fine here — only an operator opening a message pays for it, never the ACK path.
Z-segments and anything hl7apy does not know fall back to ``SEG-n``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from gateway.ack import version_tuple

# hl7apy's reference versions; a message's version is read with the nearest one at or below.
_VERSIONS = ("2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8",
             "2.8.1", "2.8.2")


@dataclass(frozen=True)
class FieldView:
    """One valued field: ``PID-5``, ``Patient Name``, its text as received."""

    key: str
    name: str
    value: str


@dataclass(frozen=True)
class SegmentView:
    """One segment and its valued fields, in order."""

    id: str
    fields: tuple[FieldView, ...]


def reference_version(version: str) -> str:
    """The hl7apy version to read names from: ``2.7.1`` -> ``2.7``; unknown -> ``2.5``."""
    wanted = version_tuple(version.strip())
    if not wanted:
        return "2.5"
    best = "2.1"
    for candidate in _VERSIONS:
        if version_tuple(candidate) <= wanted:
            best = candidate
    return best if wanted >= (2, 1) else "2.5"


def _title(long_name: str) -> str:
    words = long_name.replace("_S_", "'S_").split("_")
    return " ".join(w.capitalize() for w in words if w)


@functools.lru_cache(maxsize=1024)
def field_names(segment: str, version: str) -> dict[int, str]:
    """Field position -> name (``5 -> "Patient Name"``); empty for unknown segments."""
    if not segment.isalnum() or len(segment) != 3:
        return {}
    try:
        from hl7apy import load_reference  # lazily: slow, and only the console needs it

        ref: Any = load_reference(segment, "Segment", reference_version(version))
    except Exception:  # noqa: BLE001 - Z-segments and oddities: fall back to SEG-n
        return {}
    names: dict[int, str] = {}
    for child in ref[1]:
        key, definition = child[0], child[1]
        try:
            position = int(str(key).rsplit("_", 1)[1])
            names[position] = _title(str(definition[3]))
        except (IndexError, ValueError, TypeError):
            continue
    return names


def segments(text: str) -> list[SegmentView]:
    """Split a message into segments and named, valued fields (MSH-1/MSH-2 included)."""
    lines = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]
    if not lines:
        return []
    first = lines[0].lstrip("\ufeff")
    sep = first[3] if first.startswith("MSH") and len(first) > 3 else "|"
    version = ""
    if first.startswith("MSH"):
        msh = first.split(sep)
        version = msh[11].split(msh[1][:1] or "^")[0] if len(msh) > 11 and msh[1] else ""
    out: list[SegmentView] = []
    for line in [first, *lines[1:]]:
        parts = line.split(sep)
        seg_id = parts[0].strip()
        if seg_id == "MSH":
            values = [sep, *parts[1:]]  # MSH-1 is the separator itself
        else:
            values = parts[1:]
        names = field_names(seg_id, version)
        fields = tuple(FieldView(f"{seg_id}-{n}", names.get(n, ""), value)
                       for n, value in enumerate(values, start=1) if value != "")
        out.append(SegmentView(seg_id, fields))
    return out
