"""Segments, fields, repetitions and components of a tokenized HL7 v2 message.

Only segments are split into fields up front (a ``str.split`` per segment); repetitions,
components and escape sequences are split and decoded when a value is read.
Numbering follows HL7: fields, components and subcomponents count from 1, and in MSH the
field separator itself is MSH-1, so ``msh.field(2)`` is the encoding characters.
"""

from __future__ import annotations

from typing import Final

from mappers.hl7v2.encoding import Encoding

NULL: Final = '""'  # HL7 explicit null: "delete the value", distinct from an empty field


class Repetition:
    """One occurrence of a field (or a component viewed as a composite of subcomponents)."""

    __slots__ = ("_enc", "_parts", "_sep", "_top", "raw")

    def __init__(self, raw: str, enc: Encoding, sep: str | None = None) -> None:
        self.raw = raw
        self._enc = enc
        self._sep = enc.component if sep is None else sep
        self._top = sep is None  # components may still hold subcomponents
        self._parts: list[str] | None = None

    def __bool__(self) -> bool:
        return bool(self.raw) and self.raw != NULL

    def __repr__(self) -> str:
        return f"Repetition({self.raw!r})"

    @property
    def is_null(self) -> bool:
        """True for the explicit null ``""``, which asks the receiver to delete a value."""
        return self.raw == NULL

    @property
    def cache_key(self) -> tuple[str, str, str]:
        """Raw text plus the separators that decide how it decodes, for memoising results."""
        return (self.raw, self._sep, self._enc.escape)

    @property
    def components(self) -> list[str]:
        """The raw (still escaped) components."""
        if self._parts is None:
            self._parts = self.raw.split(self._sep) if self._sep else [self.raw]
        return self._parts

    def component(self, i: int) -> str:
        """Component ``i`` (1-based), decoded; its first subcomponent if it has several."""
        parts = self._parts
        if parts is None:
            parts = self._parts = self.raw.split(self._sep) if self._sep else [self.raw]
        if i > len(parts):
            return ""
        raw = parts[i - 1]
        if not raw:
            return ""
        enc = self._enc
        if self._top and enc.subcomponent in raw:
            raw = raw.split(enc.subcomponent, 1)[0]
        if raw == NULL:
            return ""
        return enc.unescape(raw) if enc.escape in raw else raw

    def decoded(self, n: int) -> list[str]:
        """Components 1..n decoded and trimmed in one call (index 0 is component 1).

        Padded with "" to ``n`` items: the fast path for datatype functions, which read
        most components of a value.
        """
        enc = self._enc
        raw_all = self.raw
        parts = self._parts
        if parts is None:
            parts = self._parts = raw_all.split(self._sep) if self._sep else [raw_all]
        sub = enc.subcomponent if self._top else ""
        esc = enc.escape
        if (not sub or sub not in raw_all) and esc not in raw_all and NULL not in raw_all:
            out = [p.strip() for p in parts[:n]]  # nothing to decode: the common case
        else:
            out = []
            for raw in parts[:n]:
                if sub and sub in raw:
                    raw = raw.split(sub, 1)[0]
                if raw == NULL:
                    raw = ""
                elif esc in raw:
                    raw = enc.unescape(raw)
                out.append(raw.strip())
        if len(out) < n:
            out += [""] * (n - len(out))
        return out

    def subcomponents(self, i: int) -> list[str]:
        """The decoded subcomponents of component ``i``."""
        parts = self.components
        if i > len(parts):
            return []
        return ["" if s == NULL else self._enc.unescape(s)
                for s in parts[i - 1].split(self._enc.subcomponent)]

    def subcomponent(self, i: int, j: int) -> str:
        """Subcomponent ``j`` of component ``i``, decoded."""
        subs = self.subcomponents(i)
        return subs[j - 1] if j <= len(subs) else ""

    def raw_component(self, i: int) -> str:
        """Component ``i`` as sent (escapes and subcomponents untouched)."""
        parts = self._parts if self._parts is not None else self.components
        return parts[i - 1] if i <= len(parts) else ""

    @property
    def encoding(self) -> Encoding:
        """The encoding characters this value was sent with."""
        return self._enc

    def part(self, i: int) -> Repetition:
        """Component ``i`` as a composite whose parts are its subcomponents (CX.4 as HD)."""
        parts = self.components
        raw = parts[i - 1] if i <= len(parts) else ""
        if not self._top:  # already a subcomponent: no deeper level
            return Repetition(raw, self._enc, sep="")
        return Repetition(raw, self._enc, sep=self._enc.subcomponent)

    @property
    def text(self) -> str:
        """The whole repetition decoded, separators kept (for free-text types like ST)."""
        return "" if self.raw == NULL else self._enc.unescape(self.raw)


class Field:
    """One field of a segment, with all its repetitions."""

    __slots__ = ("_enc", "_literal", "_reps", "_values", "raw")

    def __init__(self, raw: str, enc: Encoding, literal: bool = False) -> None:
        self.raw = raw
        self._enc = enc
        self._literal = literal  # MSH-1 and MSH-2 hold separators: never split or decode
        self._reps: list[Repetition] | None = None
        self._values: list[Repetition] | None = None

    def __bool__(self) -> bool:
        return bool(self.raw) and self.raw != NULL

    def __repr__(self) -> str:
        return f"Field({self.raw!r})"

    @property
    def is_null(self) -> bool:
        """True for the explicit null ``""``."""
        return self.raw == NULL

    @property
    def repetitions(self) -> list[Repetition]:
        """Every repetition, empty ones included so positions stay true; none when null."""
        if self._reps is None:
            raw, enc = self.raw, self._enc
            if not raw or raw == NULL:
                self._reps = []
            elif self._literal:
                self._reps = [Repetition(raw, enc, sep="")]
            elif enc.repetition not in raw:
                self._reps = [Repetition(raw, enc)]
            else:
                self._reps = [Repetition(r, enc) for r in raw.split(enc.repetition)]
        return self._reps

    def values(self) -> list[Repetition]:
        """The repetitions that hold a value (not empty, not ``""``)."""
        if self._values is None:
            self._values = [r for r in self.repetitions if r.raw and r.raw != NULL]
        return self._values

    @property
    def first(self) -> Repetition:
        """The first repetition (empty when the field is empty)."""
        reps = self.repetitions
        return reps[0] if reps else Repetition("", self._enc)

    @property
    def value(self) -> str:
        """The decoded first component of the first repetition: the field's plain value."""
        if self._literal:
            return self.raw
        return self.first.component(1)

    def component(self, i: int) -> str:
        """Component ``i`` of the first repetition, decoded."""
        return self.first.component(i)


class Segment:
    """One segment: its id and its fields, addressed by HL7 field number."""

    __slots__ = ("_cache", "_enc", "_fields", "_values", "id", "position")

    def __init__(self, fields: list[str], enc: Encoding, position: int) -> None:
        self.id = fields[0]
        self._fields = fields  # index n holds field n (for MSH, index 1 holds MSH-1)
        self._enc = enc
        self.position = position  # 1-based place of the segment in the message
        self._cache: dict[int, Field] | None = None  # fields read so far, split once
        self._values: dict[int, list[Repetition]] = {}

    def __repr__(self) -> str:
        return f"Segment({self.id!r}, position={self.position})"

    def __len__(self) -> int:
        """The number of the last field present."""
        return len(self._fields) - 1

    def field(self, n: int) -> Field:
        """Field ``n`` (1-based); an empty field when absent."""
        cache = self._cache
        if cache is None:
            cache = self._cache = {}
        elif n in cache:
            return cache[n]
        if n < 1 or n >= len(self._fields):
            found = Field("", self._enc)
        else:
            found = Field(self._fields[n], self._enc, literal=n <= 2 and self.id == "MSH")
        cache[n] = found
        return found

    def values(self, n: int) -> list[Repetition]:
        """The repetitions of field ``n`` that hold a value (the mapping engine's fast path)."""
        found = self._values.get(n)
        if found is not None:
            return found
        fields, enc = self._fields, self._enc
        raw = fields[n] if 0 < n < len(fields) else ""
        if not raw or raw == NULL:
            found = []
        elif n <= 2 and self.id == "MSH":
            found = [Repetition(raw, enc, sep="")]
        elif enc.repetition not in raw:
            found = [Repetition(raw, enc)]
        else:
            found = [Repetition(r, enc) for r in raw.split(enc.repetition) if r and r != NULL]
        self._values[n] = found
        return found

    @property
    def encoding(self) -> Encoding:
        """The encoding characters of the message this segment belongs to."""
        return self._enc

    def raw_fields(self) -> list[str]:
        """The raw field strings; index ``n`` holds field ``n`` and index 0 the segment id."""
        return self._fields
