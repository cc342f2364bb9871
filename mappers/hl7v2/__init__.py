"""A fast split-based HL7 v2 tokenizer: ``parse(text) -> Message``.

It reads any HL7 v2 message without knowing its structure (hl7apy costs ~30 ms a message;
splitting costs a few microseconds). Structure and meaning belong to the mapping specs.
"""

from __future__ import annotations

from typing import Final

from mappers.errors import UnreadableMessage
from mappers.hl7v2.encoding import Encoding
from mappers.hl7v2.header import Header
from mappers.hl7v2.message import NULL, Field, Repetition, Segment

__all__ = ["NULL", "Encoding", "Field", "Header", "Message", "Repetition", "Segment", "parse"]

_MIN_MSH: Final = len("MSH|^~\\&")
_NONE: Final[list[Segment]] = []


class Message:
    """A tokenized message: its segments in order, looked up by id."""

    __slots__ = ("_by_id", "_header", "encoding", "segments")

    def __init__(self, segments: list[Segment], encoding: Encoding) -> None:
        self.segments = segments
        self.encoding = encoding
        self._by_id: dict[str, list[Segment]] = {}
        for seg in segments:
            self._by_id.setdefault(seg.id, []).append(seg)
        self._header: Header | None = None

    def __repr__(self) -> str:
        return f"Message({[s.id for s in self.segments]})"

    @property
    def header(self) -> Header:
        """MSH read into a ``Header``; raises ``RequiredFieldMissing`` for MSH-9/MSH-10."""
        if self._header is None:
            self._header = Header.from_segment(self.segments[0])
        return self._header

    def get(self, segment_id: str, n: int = 1) -> Segment | None:
        """The ``n``-th (1-based) segment with this id, or None."""
        found = self._by_id.get(segment_id)
        if not found or n < 1 or n > len(found):
            return None
        return found[n - 1]

    def get_all_view(self, segment_id: str) -> list[Segment]:
        """Every segment with this id, in message order (the message's own list: no copy)."""
        return self._by_id.get(segment_id, _NONE)

    def get_all(self, segment_id: str) -> list[Segment]:
        """Every segment with this id, in message order."""
        return list(self._by_id.get(segment_id, ()))


def parse(text: str) -> Message:
    """Tokenize HL7 v2 text (CR, LF or CRLF separated, optional BOM) into a ``Message``."""
    if text[:1] == "\ufeff":
        text = text[1:]
    # CR is the HL7 separator; only a message with no CR at all is split on LF, so that a
    # stray LF inside a CR-separated message stays part of its field.
    lines = text.replace("\r\n", "\r").split("\r") if "\r" in text else text.split("\n")
    lines = [line for line in lines if line and not line.isspace()]
    if not lines:
        raise UnreadableMessage("the message is empty")
    first = lines[0]
    if not first.startswith("MSH"):
        raise UnreadableMessage("the message does not start with an MSH segment",
                                segment=first[:3] or None, sequence=1)
    if len(first) < _MIN_MSH:
        raise UnreadableMessage("the MSH segment is too short to hold its encoding characters",
                                segment="MSH", sequence=1)
    sep = first[3]
    raw_msh = first.split(sep)
    encoding = Encoding.from_msh(sep, raw_msh[1])
    raw_msh.insert(1, sep)  # MSH-1 is the separator itself: keep field numbers true
    segments = [Segment(raw_msh, encoding, 1)]
    segments.extend(Segment(line.split(sep), encoding, pos)
                    for pos, line in enumerate(lines[1:], start=2))
    return Message(segments, encoding)

