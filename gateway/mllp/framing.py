"""MLLP framing: bytes in, frames out; no sockets, no HL7.

A frame is ``<VT> payload <FS><CR>``. The decoder is incremental (feed it whatever the
socket delivered) so two frames in one TCP write and a frame dribbled a byte at a time
come out the same. Bytes outside a frame are discarded and counted rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VT = b"\x0b"
FS = b"\x1c"
CR = b"\x0d"
START = VT[0]
END = FS + CR


MAX_PREAMBLE_BYTES = 1024  # bytes before the first VT past which a peer is not MLLP
_HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ",
                 b"CONNECT ", b"TRACE ", b"PRI * HTTP/2")
SNIFF_BYTES = max(len(m) for m in _HTTP_METHODS)


def sniff_protocol(head: bytes) -> str | None:
    """What the first bytes of a connection look like: ``"tls"``, ``"http"``, ``"mllp"``
    (a VT first, or anything that cannot become TLS or HTTP), or None (need more bytes).

    A TLS ClientHello is a handshake record (0x16) of version 3.x; an HTTP request starts
    with a method and a space. Garbage that is neither is left to the decoder, which
    discards and counts it (and the caller gives up after ``MAX_PREAMBLE_BYTES``).
    """
    if not head:
        return None
    if head[0] == 0x16:
        if len(head) < 2:
            return None
        if head[1] == 0x03:
            return "tls"
    for method in _HTTP_METHODS:
        if head.startswith(method):
            return "http"
        if method.startswith(head):
            return None
    return "mllp"


class FrameTooLarge(Exception):
    """A frame grew past the configured maximum; it is refused, the stream goes on.

    ``frames`` holds the frames completed earlier in the same ``feed`` call: they are whole
    messages the peer sent before the oversized one and must be answered first. ``head`` is
    the start of the oversized frame (at most ``HEAD_BYTES`` and never past the cap), enough
    to read its MSH for a refusal ACK and to keep as evidence. ``rest`` is what followed the
    oversized frame's end in the same ``feed`` call: feed it again to go on. When the end has
    not arrived yet the decoder skips the frame's remaining bytes up to its end by itself.
    """

    def __init__(self, text: str, frames: list[bytes] | None = None, *, head: bytes = b"",
                 rest: bytes = b"") -> None:
        super().__init__(text)
        self.frames = frames or []
        self.head = head
        self.rest = rest


HEAD_BYTES = 64 * 1024  # of an oversized frame: kept for its refusal ACK and the record


def encode_frame(payload: bytes) -> bytes:
    """Wrap one HL7 message in MLLP start and end bytes."""
    return VT + payload + END


@dataclass
class FrameDecoder:
    """Incremental MLLP decoder.

    ``strict_end`` refuses a frame that ends in FS without the trailing CR (the byte after
    FS is then treated as noise); when False a lone FS also ends a frame.

    How the bytes arrive never changes the result: the same frames, the same
    ``FrameTooLarge`` and the same ``discarded_bytes`` for one write or one byte at a time
    (a property test feeds every chunking). ``feed`` raises ``FrameTooLarge`` and nothing else.
    """

    max_frame_bytes: int = 16 * 1024 * 1024
    strict_end: bool = True
    discarded_bytes: int = 0
    seen_start: bool = False  # a VT has arrived on this stream at least once
    _buffer: bytearray = field(default_factory=bytearray)
    _in_frame: bool = False
    _cr_may_follow: bool = False  # a lone FS ended the last chunk and its frame (not strict)
    _skipping: bool = False  # inside a refused oversized frame: drop bytes up to its end

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and not yet ended (a partial frame is buffered)."""
        return self._in_frame

    @property
    def skipping(self) -> bool:
        """True while the rest of a refused oversized frame is being dropped."""
        return self._skipping

    @property
    def buffered(self) -> int:
        """Bytes of the partial frame held so far."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data`` and return the frames it completed, in order."""
        frames: list[bytes] = []
        if self._cr_may_follow and data:
            self._cr_may_follow = False
            if data[:1] == CR:  # the CR of that FS CR: the end of the frame, not noise
                data = data[1:]
        while data:
            if not self._in_frame:
                start = data.find(VT)
                if start < 0:
                    self.discarded_bytes += len(data)
                    break
                self.discarded_bytes += start
                data = data[start + 1 :]
                self._in_frame = True
                self.seen_start = True
                self._buffer.clear()
                continue
            search_from = max(0, len(self._buffer) - 1)  # an FS may end the previous chunk
            self._buffer += data
            data = b""
            end, width = self._find_end(search_from)
            if end < 0:
                # in strict mode a trailing FS may be the start of the frame's end
                pending = 1 if self.strict_end and self._buffer[-1:] == FS else 0
                if self._skipping:  # keep only a possible start of the end marker
                    del self._buffer[: len(self._buffer) - pending]
                elif len(self._buffer) - pending > self.max_frame_bytes:
                    head = self._head()
                    del self._buffer[: len(self._buffer) - pending]
                    self._skipping = True
                    raise FrameTooLarge(self._too_large(), frames, head=head)
                break
            if self._skipping or end > self.max_frame_bytes:
                skipped, head = self._skipping, self._head()
                rest = bytes(self._buffer[end + width :])
                self.reset()
                self._cr_may_follow = width == 1 and not rest
                if skipped:  # the end of a frame refused earlier: go on after it
                    data = rest
                    continue
                raise FrameTooLarge(self._too_large(), frames, head=head, rest=rest)
            frames.append(bytes(self._buffer[:end]))
            data = bytes(self._buffer[end + width :])
            self.reset()
            self._cr_may_follow = width == 1 and not data
        return frames

    def _head(self) -> bytes:
        return bytes(self._buffer[: min(HEAD_BYTES, self.max_frame_bytes)])

    def _too_large(self) -> str:
        return f"frame exceeds {self.max_frame_bytes} bytes"

    def _find_end(self, search_from: int) -> tuple[int, int]:
        """Position and width of the frame terminator in the buffer, or (-1, 0)."""
        if self.strict_end:
            return self._buffer.find(END, search_from), 2
        end = self._buffer.find(FS, search_from)
        if end < 0:
            return -1, 0
        if end + 1 < len(self._buffer) and self._buffer[end + 1] == CR[0]:
            return end, 2
        return end, 1

    def reset(self) -> None:
        """Drop any partial frame (the peer went away or the frame was refused)."""
        self._buffer.clear()
        self._in_frame = False
        self._cr_may_follow = False
        self._skipping = False
