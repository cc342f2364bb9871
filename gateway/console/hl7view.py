"""A raw HL7 v2 message shown segment by segment, each field with its standard name.

Field names come from hl7apy's reference tables for the message's version (MSH-12),
imported lazily and cached per (segment, version): hl7apy is slow to import and to query,
which is fine here — only an operator opening a message pays for it, never the ACK path.
Z-segments and anything hl7apy does not know fall back to ``SEG-n``.

A field with repetitions or components (``PID-3``, ``PID-5``, ``PID-11``) is also split:
each repetition, each valued component numbered and named from the field's datatype
(``PID-3.4 Assigning Authority``), and subcomponents under it (``PID-3.4.2 Universal Id``).
That is how an interface engineer checks which repetition holds the MRN without counting
carets.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from gateway.ack import version_tuple

# hl7apy's reference versions; a message's version is read with the nearest one at or below.
_VERSIONS = ("2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8",
             "2.8.1", "2.8.2")

# Component names of one field: component number -> (name, subcomponent number -> name).
ComponentNames = dict[int, tuple[str, dict[int, str]]]


@dataclass(frozen=True)
class Part:
    """A valued component (``PID-3.1``) or subcomponent (``PID-3.4.2``) of one repetition."""

    key: str
    name: str
    value: str
    parts: tuple[Part, ...] = ()  # subcomponents, when the component has several


@dataclass(frozen=True)
class FieldView:
    """One valued field: ``PID-5``, ``Patient Name``, its text as received, and, when it
    has repetitions or components, each repetition's valued components."""

    key: str
    name: str
    value: str
    repetitions: tuple[tuple[Part, ...], ...] = ()


@dataclass(frozen=True)
class SegmentView:
    """One segment and its valued fields, in order."""

    id: str
    fields: tuple[FieldView, ...]


@dataclass(frozen=True)
class Separators:
    """The encoding characters of MSH-1/MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    subcomponent: str = "&"


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


@functools.lru_cache(maxsize=256)
def _reference(segment: str, version: str) -> tuple[Any, ...]:
    """hl7apy's children of a segment: ``(key, definition, cardinality, kind)``; () if none."""
    if not segment.isalnum() or len(segment) != 3:
        return ()
    try:
        from hl7apy import load_reference  # lazily: slow, and only the console needs it

        ref: Any = load_reference(segment, "Segment", reference_version(version))
    except Exception:  # noqa: BLE001 - Z-segments and oddities: fall back to SEG-n
        return ()
    return tuple(ref[1])


def _position(key: Any) -> int | None:
    try:
        return int(str(key).rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return None


@functools.lru_cache(maxsize=1024)
def field_names(segment: str, version: str) -> dict[int, str]:
    """Field position -> name (``5 -> "Patient Name"``); empty for unknown segments."""
    names: dict[int, str] = {}
    for child in _reference(segment, version):
        position = _position(child[0])
        try:
            if position is not None:
                names[position] = _title(str(child[1][3]))
        except (IndexError, TypeError):
            continue
    return names


def _children(definition: Any) -> ComponentNames:
    """Component names under a ``('sequence', children, ...)`` definition."""
    out: ComponentNames = {}
    if not definition or definition[0] != "sequence" or not definition[1]:
        return out
    for child in definition[1]:
        position = _position(child[0])
        if position is None:
            continue
        inner = child[1]
        subs = {n: name for n, (name, _) in _children(inner).items()}
        out[position] = (_title(str(inner[3])) if len(inner) > 3 else "", subs)
    return out


@functools.lru_cache(maxsize=4096)
def component_names(segment: str, version: str, field: int) -> ComponentNames:
    """Component (and subcomponent) names of one field from its datatype (``PID-3`` is a
    CX: ``1 -> "Id Number"``, ``4 -> ("Assigning Authority", {1: "Namespace Id", ...})``)."""
    for child in _reference(segment, version):
        if _position(child[0]) == field:
            try:
                return _children(child[1])
            except (IndexError, TypeError):
                return {}
    return {}


def split_field(key: str, value: str, names: ComponentNames, seps: Separators
                ) -> tuple[tuple[Part, ...], ...]:
    """A field's repetitions and their valued components; () for a plain value."""
    if seps.component not in value and seps.repetition not in value:
        return ()
    out: list[tuple[Part, ...]] = []
    for rep in value.split(seps.repetition):
        parts: list[Part] = []
        for n, comp in enumerate(rep.split(seps.component), start=1):
            if comp == "":
                continue
            name, subnames = names.get(n, ("", {}))
            subs: tuple[Part, ...] = ()
            if seps.subcomponent in comp:
                subs = tuple(Part(f"{key}.{n}.{s}", subnames.get(s, ""), text)
                             for s, text in enumerate(comp.split(seps.subcomponent), start=1)
                             if text != "")
            parts.append(Part(f"{key}.{n}", name, comp, subs))
        out.append(tuple(parts))
    return tuple(out)


def _separators(field: str, enc: str) -> Separators:
    """MSH-2's characters (component, repetition, escape, subcomponent), defaults if short."""
    def at(i: int, default: str) -> str:
        return enc[i] if len(enc) > i else default
    return Separators(field, at(0, "^"), at(1, "~"), at(3, "&"))


def segments(text: str) -> list[SegmentView]:
    """Split a message into segments and named, valued fields (MSH-1/MSH-2 included)."""
    lines = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]
    if not lines:
        return []
    first = lines[0].lstrip("\ufeff")
    sep = first[3] if first.startswith("MSH") and len(first) > 3 else "|"
    version = ""
    seps = Separators(field=sep)
    if first.startswith("MSH"):
        msh = first.split(sep)
        enc = msh[1] if len(msh) > 1 else ""
        seps = _separators(sep, enc)
        version = msh[11].split(enc[:1] or "^")[0] if len(msh) > 11 and enc else ""
    out: list[SegmentView] = []
    for line in [first, *lines[1:]]:
        parts = line.split(sep)
        seg_id = parts[0].strip()
        if seg_id == "MSH":
            values = [sep, *parts[1:]]  # MSH-1 is the separator itself
        else:
            values = parts[1:]
        names = field_names(seg_id, version)
        fields: list[FieldView] = []
        for n, value in enumerate(values, start=1):
            if value == "":
                continue
            key = f"{seg_id}-{n}"
            split = () if seg_id == "MSH" and n <= 2 else \
                split_field(key, value, component_names(seg_id, version, n), seps)
            fields.append(FieldView(key, names.get(n, ""), value, split))
        out.append(SegmentView(seg_id, tuple(fields)))
    return out
