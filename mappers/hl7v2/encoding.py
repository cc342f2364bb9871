"""Encoding characters of an HL7 v2 message and the escape sequences built from them.

Escape sequences are decoded only when a value is read (see ``Encoding.unescape``), so a
message that is parsed and routed but never mapped pays nothing for them.
"""

from __future__ import annotations

import string
from typing import Final

from mappers.errors import UnreadableMessage

# Formatting escapes (HL7 v2 2.7 section 2.7.6) that carry no text; ``.br`` and ``.sp`` are
# line breaks, the rest only steer layout on a printer and are dropped.
_LINE_BREAKS: Final = frozenset({".br", ".sp"})
_LAYOUT: Final = frozenset({"H", "N", ".fi", ".nf", ".in", ".ti", ".sk", ".ce"})
_PUNCTUATION: Final = frozenset(string.punctuation)


class Encoding:
    """The field separator and encoding characters that MSH-1 and MSH-2 declare.

    A plain class rather than a dataclass: one is made per message, and mypyc compiles an
    explicit ``__init__`` but leaves a dataclass's generated one interpreted.
    """

    __slots__ = ("component", "escape", "field", "repetition", "subcomponent", "truncation")

    def __init__(self, field: str = "|", component: str = "^", repetition: str = "~",
                 escape: str = "\\", subcomponent: str = "&", truncation: str = "") -> None:
        self.field = field
        self.component = component
        self.repetition = repetition
        self.escape = escape
        self.subcomponent = subcomponent
        self.truncation = truncation  # HL7 2.7+: a fifth encoding character, rarely used

    def _key(self) -> tuple[str, str, str, str, str, str]:
        return (self.field, self.component, self.repetition, self.escape, self.subcomponent,
                self.truncation)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Encoding) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Encoding({})".format(", ".join(map(repr, self._key())))

    @classmethod
    def from_msh(cls, field_sep: str, chars: str) -> Encoding:
        """Check MSH-1 and MSH-2 and build the encoding; ``UnreadableMessage`` if unusable."""
        if not 4 <= len(chars) <= 5:
            raise UnreadableMessage(
                f"MSH-2 must hold 4 or 5 encoding characters, found {len(chars)}",
                segment="MSH", sequence=1, field=2)
        every = field_sep + chars
        if len(set(every)) != len(every):
            raise UnreadableMessage("MSH-1/MSH-2 encoding characters repeat",
                                    segment="MSH", sequence=1, field=2)
        if not set(every) <= _PUNCTUATION:
            raise UnreadableMessage("MSH-1/MSH-2 encoding characters must be punctuation",
                                    segment="MSH", sequence=1, field=2)
        return cls(field_sep, chars[0], chars[1], chars[2], chars[3], chars[4:])

    def unescape(self, text: str) -> str:
        """Decode HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\.br\\ \\Xhh\\ ...)."""
        esc = self.escape
        if esc not in text:
            return text
        parts = text.split(esc)
        out = [parts[0]]
        # Odd-indexed parts sit between two escape characters; a final unpaired escape
        # character has no closing partner and is kept as text.
        closed = len(parts) - 1 if len(parts) % 2 == 1 else len(parts) - 2
        i = 1
        while i < closed:
            out.append(self._escape_sequence(parts[i]))
            out.append(parts[i + 1])
            i += 2
        if closed < len(parts) - 1:
            out.append(esc + esc.join(parts[closed + 1:]))
        return "".join(out)

    def _escape_sequence(self, seq: str) -> str:
        """The text one escape sequence stands for; unknown sequences are kept verbatim."""
        simple = {"F": self.field, "S": self.component, "T": self.subcomponent,
                  "R": self.repetition, "E": self.escape, "P": self.truncation}
        if simple.get(seq):
            return simple[seq]
        name = seq.split(" ", 1)[0]
        if name in _LINE_BREAKS:
            return "\n"
        if name in _LAYOUT:
            return ""
        if seq[:1] == "X" and len(seq) > 1 and len(seq) % 2 == 1:
            text = _hex_text(seq[1:])
            if text is not None:
                return text
        return self.escape + seq + self.escape


def _hex_text(digits: str) -> str | None:
    """Bytes written as hex (``\\Xhh..\\``) as text: UTF-8 when valid, else Latin-1."""
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    # FHIR strings should hold no control characters but tab, CR and LF
    return "".join(c for c in text if c >= " " or c in "\t\r\n") if not text.isprintable() \
        else text
