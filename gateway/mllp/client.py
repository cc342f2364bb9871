"""A small MLLP client: send messages, read each whole ACK frame, with timeouts."""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path
from types import TracebackType

from gateway.errors import GatewayError
from gateway.mllp.framing import FrameDecoder, encode_frame

_MSH_START = re.compile(rb"(?:^|[\r\n]+)(?=MSH)")
_BATCH_START = (b"FHS", b"BHS")


class MllpClientError(GatewayError):
    """The peer did not answer with an ACK frame in time, or closed the connection."""


class MllpConnectionLost(MllpClientError):
    """The connection broke (or timed out) with a message unanswered; reconnect to go on."""


def split_messages(data: bytes) -> list[bytes]:
    """Split a file of one or more HL7 messages into messages with CR segment ends.

    Messages start at each line beginning with ``MSH``; LF and CRLF become CR, blank lines
    between messages are dropped. A batch file (starting with FHS or BHS) is one item: it
    is sent whole, as one frame, and the gateway splits it.
    """
    data = data.lstrip(b"\xef\xbb\xbf")
    if data.lstrip().startswith(_BATCH_START):
        return [_segments(data.lstrip())]
    parts = [p for p in _MSH_START.split(data) if p.strip()]
    out = []
    for part in parts:
        out.append(_segments(part))
    return out


def _segments(data: bytes) -> bytes:
    """Lines joined with CR segment ends, blank lines dropped."""
    lines = [ln for ln in re.split(rb"\r\n|\r|\n", data) if ln.strip()]
    return b"\r".join(lines) + b"\r"


def read_message_files(paths: list[Path]) -> list[tuple[Path, bytes]]:
    """Every message in ``paths``, with the file it came from.

    Split as ``hl7gw map`` splits them (``gateway.prepare.split_file``: a UTF-16 file is
    one message, not cut apart at byte 0x0D inside its code units).
    """
    from gateway.prepare import split_file  # the mapper's envelope sniffer; only for files

    return [(p, m) for p in paths for m in split_file(p.read_bytes())]


class MllpClient:
    """One MLLP connection; ``async with MllpClient(host, port) as c: await c.send(msg)``.

    ``tls`` (a context from ``gateway.mllp.settings.client_context``) makes it TLS.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 30.0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = tls
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = FrameDecoder()
        self._ready: list[bytes] = []

    async def __aenter__(self) -> MllpClient:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """True between a successful :meth:`connect` and :meth:`close`."""
        return self._writer is not None

    async def connect(self) -> None:
        """Open the TCP (and TLS) connection, bounded by the timeout."""
        self._decoder = FrameDecoder()
        self._ready = []
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.tls), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise MllpClientError(
                f"cannot connect to {self.host}:{self.port}: {exc or 'timed out'}") from exc

    async def reconnect(self) -> None:
        """Drop the current connection (whatever state it is in) and open a new one."""
        if self._writer is not None:
            self._writer.transport.abort()
        await self.close()
        await self.connect()

    async def abort(self) -> None:
        """Drop the connection at once (no FIN handshake wait); safe when not connected."""
        if self._writer is not None:
            self._writer.transport.abort()
        await self.close()

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = None

    async def send(self, message: bytes) -> bytes:
        """Send one message and return the payload of the ACK frame that answers it."""
        await self.write(message)
        return await self.read_ack()

    async def write(self, message: bytes) -> None:
        """Send one message without waiting for its answer (read it with :meth:`read_ack`)."""
        if self._writer is None:
            raise MllpClientError("not connected")
        try:
            self._writer.write(encode_frame(message))
            # drain() only when the socket did not take the whole frame: it is a wait (and
            # a timeout set up) per message for nothing otherwise.
            if self._writer.transport.get_write_buffer_size():
                async with asyncio.timeout(self.timeout):
                    await self._writer.drain()
        except (OSError, TimeoutError) as exc:
            raise MllpConnectionLost(f"connection lost: {exc or 'timed out'}") from exc

    async def read_ack(self, within: float | None = None) -> bytes:
        """Read the next whole frame from the peer, within ``within`` seconds (default: the
        client's timeout)."""
        if self._reader is None:
            raise MllpClientError("not connected")
        within = self.timeout if within is None else within
        try:
            # One deadline for the whole ACK (asyncio.timeout), not a wait_for per read.
            async with asyncio.timeout(within):
                while not self._ready:
                    data = await self._reader.read(65536)
                    if not data:
                        raise MllpConnectionLost(
                            "connection closed by the peer before the ACK")
                    self._ready.extend(self._decoder.feed(data))
        except TimeoutError:
            raise MllpConnectionLost(f"no ACK within {within:g} s") from None
        except OSError as exc:
            raise MllpConnectionLost(f"connection lost: {exc}") from exc
        return self._ready.pop(0)
