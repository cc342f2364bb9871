"""The state of one conversion: the message, the specs' tables, issues found, ids assigned."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from mappers.engine.refs import FieldRef, Overlay, TableFlags
from mappers.hl7v2 import NULL, Field, Header, Message, Repetition, Segment
from mappers.result import Issue, Severity


class Context:
    """What datatype functions, predicates and id keys may look at while mapping a message."""

    __slots__ = ("_before", "_children", "_ends", "_resolved", "built", "children", "consumed",
                 "default_tz", "header", "ids", "issues", "location", "message", "overlay",
                 "rids", "scratch", "segment", "tables", "times", "trace")

    def __init__(self, message: Message, tables: Mapping[str, TableFlags],
                 resolved: dict[str, dict[str, Any]], default_tz: str,
                 overlay: Overlay | None = None) -> None:
        self.message = message
        self.overlay = overlay  # the sender profile's per-value changes, if any
        self.header: Header = message.header
        self.tables = tables
        self._resolved = resolved
        self.default_tz = default_tz
        self.issues: list[Issue] = []
        self.ids: dict[str, str] = {}  # resource type -> first id built, for keys and results
        # spec name -> segment positions, urls (Type/id) and segment ids of what it built,
        # in message order (parallel lists, searched by position)
        self.built: dict[str, tuple[list[int], list[str], list[str]]] = {}
        self.segment: Segment = message.segments[0]  # the segment being mapped
        self.location = ""  # the field being mapped, for issues: "PID-8"
        self.children: frozenset[str] = frozenset()  # trailing segment ids read with it
        self._children: list[Segment] | None = None
        self._ends: dict[int, int] = {}  # segment position -> where its group ends
        self._before: dict[str, set[str]] = {}  # segment id -> ids before its first one
        self.consumed: set[int] = set()  # positions of segments a resource was built from
        # per-segment memo for the value-type predicates that several rules ask alike
        self.scratch: dict[str, str] = {}  # field -> its value type (OBX-2), for predicates
        self.rids: dict[tuple[str, str], str] = {}  # (resource type, key) -> id, this message
        # TS values already converted in this message (each OBX repeats its order's times);
        # per message, so no patient's date outlives the conversion
        self.times: dict[tuple[str, str], str] = {}  # (TS text, FHIR kind) -> FHIR value
        # explain() only: (path, source field, datatype or kind, value or table note)
        self.trace: list[tuple[str, str, str, Any]] | None = None

    def enter(self, segment: Segment, children: frozenset[str]) -> None:
        """Start mapping ``segment`` (with the trailing ``children`` segments it owns)."""
        self.segment = segment
        self.location = segment.id
        self.children = children
        self._children = None
        self.scratch.clear()
        self.consumed.add(segment.position)

    def child_segments(self) -> list[Segment]:
        """The segments right after the current one whose ids are in ``children``."""
        found = self._children
        if found is None:
            found = []
            segments = self.message.segments
            for seg in segments[self.segment.position:]:  # positions are 1-based
                if seg.id not in self.children:
                    break
                found.append(seg)
                self.consumed.add(seg.position)
            self._children = found
        return found

    def _own(self, segment_id: str) -> list[Segment]:
        """The child segments ``segment_id`` of the current segment.

        Right after it; else, for a site's Z-segment (a profile's field) when the current
        segment is the only one of its kind in the message, ``related``'s choice: a ZPD at
        the end of an ADT message (after PV1, not right after the one PID) still belongs to
        that PID. With two PIDs (A17) or many OBX, only what follows a segment is its own,
        never a neighbour's; a standard child (NTE, PD1) is only ever the one right after.
        """
        kids = [s for s in self.child_segments() if s.id == segment_id]
        if kids or segment_id[0] != "Z" or len(self.message.get_all_view(self.segment.id)) != 1:
            return kids
        seg = self.related(segment_id)
        return [seg] if seg is not None else []

    def related(self, segment_id: str) -> Segment | None:
        """The segment of ``segment_id`` that belongs with the current one, by position.

        The current segment itself; else one after it in its group (``_group_end``: the ORC
        that follows its OBR in OUL, the OBR after its SPM in OML^O33); else the nearest one
        before it (the OBR an OBX follows); else the first in the message (a PD1 after the PID).
        """
        cur = self.segment
        if segment_id == cur.id:
            return cur
        found = self.message.get_all_view(segment_id)
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        pos = cur.position
        best = found[0]
        for seg in found:
            if seg.position > pos:
                if seg.position < self._group_end():
                    best = seg  # the group's own, though it follows
                break
            best = seg
        self.consumed.add(best.position)
        return best

    def refer(self, name: str, appends: bool) -> list[str]:
        """``Type/id`` of resources built by spec ``name`` that the current one refers to.

        Those built from the current segment's group come first: from the segment up to
        the next repeat of the structure (the OBX of an OBR, the practitioner of this OBX). A list
        element (``result[]``) takes all of them; a single element the first, else the
        nearest one built before from another kind of segment (the PID of a PV1).
        """
        built = self.built.get(name)
        if not built:
            return []
        positions, ids, segment_ids = built
        cur = self.segment
        pos = cur.position
        start = bisect_left(positions, pos)
        if start < len(positions) and positions[start] < self._group_end():
            if not appends:
                return [ids[start]]
            stop = bisect_left(positions, self._group_end(), start)
            return ids[start:stop]
        for i in range(start - 1, -1, -1):  # nearest before, from another kind of segment
            if segment_ids[i] != cur.id:
                return [ids[i]]
        return []

    def _group_end(self) -> int:
        """Where the current segment's group ends, else the message's end.

        At the next segment whose id came before the first segment with the current id (or
        is that id): a new OBR or ORC ends an OBR's group, a new OBX or NTE an OBX's, and
        an OBR the group of an SPM that follows OBX (structure read from position alone).
        """
        cur = self.segment
        ends = self._ends
        found = ends.get(cur.position)
        if found is None:
            segments = self.message.segments
            seen = self._before.get(cur.id)
            if seen is None:
                first = self.message.get_all_view(cur.id)[0].position
                seen = self._before[cur.id] = {seg.id for seg in segments[:first]}
            found = len(segments) + 1
            for seg in segments[cur.position:]:
                if seg.id in seen:
                    found = seg.position
                    break
            ends[cur.position] = found
        return found

    def record(self, name: str, url: str, segment_id: str) -> None:
        """Remember that spec ``name`` built ``url`` (``Type/id``) from the current segment."""
        built = self.built.get(name)
        if built is None:
            built = self.built[name] = ([], [], [])
        built[0].append(self.segment.position)
        built[1].append(url)
        built[2].append(segment_id)

    def issue(self, code: str, text: str, severity: Severity = "warning",
              location: str | None = None) -> None:
        """Record a problem; ``text`` must not contain values from the message."""
        self.issues.append(Issue(severity, code, self.location if location is None
                                 else location, text))

    def field(self, ref: FieldRef) -> Field:
        """The field ``ref`` names: in the current segment, its children, or ``related``."""
        sid = ref.segment
        if sid in self.children:
            kids = self._own(sid)
            seg = kids[0] if kids else None
        else:
            seg = self.segment if sid == self.segment.id else self.related(sid)
        if seg is None:
            return Field("", self.message.encoding)
        return seg.field(ref.field)

    def values(self, ref: FieldRef) -> list[Repetition]:
        """The valued repetitions of the field ``ref`` names (see ``field``); for child
        segments, those of every child in turn."""
        sid = ref.segment
        if sid == self.segment.id:
            return self.segment.values(ref.field)
        if sid in self.children:
            return [rep for s in self._own(sid) for rep in s.values(ref.field)]
        seg = self.related(sid)
        return seg.values(ref.field) if seg is not None else []

    def value(self, ref: FieldRef) -> Repetition:
        """The first repetition of ``ref``, narrowed to its component/subcomponent if given."""
        sid = ref.segment
        n = ref.field
        if sid in self.children or (n <= 2 and sid == "MSH"):
            rep = self.field(ref).first
        else:  # ``field(ref).first`` without the Field object and its repetition list
            seg = self.segment if sid == self.segment.id else self.related(sid)
            enc = self.message.encoding
            fields = seg.raw_fields() if seg is not None else []
            text = fields[n] if 0 < n < len(fields) else ""
            if text == NULL:
                text = ""
            elif enc.repetition in text:
                text = text.split(enc.repetition, 1)[0]
            rep = Repetition(text, enc)
        if ref.component is not None:
            rep = rep.part(ref.component)
            if ref.subcomponent is not None:
                rep = rep.part(ref.subcomponent)
        return rep

    def raw(self, ref: FieldRef) -> str:
        """``value(ref).raw`` read straight from the segment's text (id keys need no objects)."""
        sid = ref.segment
        n = ref.field
        if sid in self.children or (n <= 2 and sid == "MSH"):
            return self.value(ref).raw
        seg = self.segment if sid == self.segment.id else self.related(sid)
        if seg is None:
            return ""
        fields = seg.raw_fields()
        text = fields[n] if n < len(fields) else ""
        if not text or text == NULL:
            return ""
        enc = self.message.encoding
        text = text.split(enc.repetition, 1)[0]
        comp = ref.component
        if comp is None:
            return text
        parts = text.split(enc.component)
        text = parts[comp - 1] if comp <= len(parts) else ""
        sub = ref.subcomponent
        if sub is None:
            return text
        parts = text.split(enc.subcomponent)
        return parts[sub - 1] if sub <= len(parts) else ""

    def lookup(self, table: str, code: str) -> tuple[bool, Any]:
        """Map ``code`` through a code table: (found, value); records unknown codes."""
        entries = self._resolved[table]
        if code not in entries and self.tables[table].ignore_case:
            code = code.upper()
        if code in entries:
            value = entries[code]
            if self.trace is not None:
                shown = (value.get("code") or ", ".join(f"{k}={v}" for k, v in value.items())
                         ) if isinstance(value, dict) else value
                self.trace.append(("", self.location, "table", f"{table}: {code} -> {shown}"))
            return True, dict(value) if isinstance(value, dict) else value
        if not self.tables[table].user_defined:
            self.issue("unknown-code", f"code not in table {table}; left out")
        if self.trace is not None:
            self.trace.append(("", self.location, "table", f"{table}: {code} not in the table"))
        return False, None
