"""The state of one conversion: the message, the specs' tables, issues found, ids assigned."""

from __future__ import annotations

from typing import Any

from mappers.engine.models import CodeTable, FieldRef
from mappers.hl7v2 import Field, Header, Message, Repetition, Segment
from mappers.result import Issue, Severity


class Context:
    """What datatype functions, predicates and id keys may look at while mapping a message."""

    __slots__ = ("_resolved", "default_tz", "header", "ids", "issues", "location", "message",
                 "segment", "tables")

    def __init__(self, message: Message, tables: dict[str, CodeTable],
                 resolved: dict[str, dict[str, Any]], default_tz: str) -> None:
        self.message = message
        self.header: Header = message.header
        self.tables = tables
        self._resolved = resolved
        self.default_tz = default_tz
        self.issues: list[Issue] = []
        self.ids: dict[str, str] = {}  # resource type -> id, for resources already built
        self.segment: Segment = message.segments[0]  # the segment being mapped
        self.location = ""  # the field being mapped, for issues: "PID-8"

    def issue(self, code: str, text: str, severity: Severity = "warning",
              location: str | None = None) -> None:
        """Record a problem; ``text`` must not contain values from the message."""
        self.issues.append(Issue(severity, code, self.location if location is None
                                 else location, text))

    def field(self, ref: FieldRef) -> Field:
        """The field ``ref`` names: in the segment being mapped, else the first of its kind."""
        seg = self.segment if ref.segment == self.segment.id else self.message.get(ref.segment)
        if seg is None:
            return Field("", self.message.encoding)
        return seg.field(ref.field)

    def values(self, ref: FieldRef) -> list[Repetition]:
        """The valued repetitions of the field ``ref`` names (see ``field``)."""
        seg = self.segment if ref.segment == self.segment.id else self.message.get(ref.segment)
        return seg.values(ref.field) if seg is not None else []

    def value(self, ref: FieldRef) -> Repetition:
        """The first repetition of ``ref``, narrowed to its component/subcomponent if given."""
        rep = self.field(ref).first
        if ref.component is not None:
            rep = rep.part(ref.component)
            if ref.subcomponent is not None:
                rep = rep.part(ref.subcomponent)
        return rep

    def lookup(self, table: str, code: str) -> tuple[bool, Any]:
        """Map ``code`` through a code table: (found, value); records unknown codes."""
        entries = self._resolved[table]
        if code in entries:
            value = entries[code]
            return True, dict(value) if isinstance(value, dict) else value
        if not self.tables[table].user_defined:
            self.issue("unknown-code", f"code not in table {table}; left out")
        return False, None
