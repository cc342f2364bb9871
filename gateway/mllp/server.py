"""MLLP listener: accepts connections, reads frames, answers each with its ACK in order.

Frames on one connection are handled one after another, so ACKs leave in the order the
messages arrived (senders rely on that). Nothing a peer sends can stop the listener:
every connection's failure stays in that connection. What the listener does to a peer:

- refuses at once (closed before any byte is read or any TLS handshake): a peer outside
  the allowlist, past the listener's connection cap or past the per-IP cap;
- closes after a few bytes: a TLS ClientHello on a plain port, an HTTP request, or more
  than ``MAX_PREAMBLE_BYTES`` before the first VT;
- refuses a frame over ``max_frame_bytes`` with the ACK the ``oversize`` handler builds
  from the frame's first bytes (the gateway's: AR with an ERR naming the limit), drops the
  rest of that frame unbuffered and goes on with the next one; without such a handler, it
  resets the connection without an ACK;
- resets without an ACK: a frame whose FS does not come within ``frame_timeout_s`` of its
  VT, a peer that does not read its ACKs within ``frame_timeout_s``;
- closes quietly: no bytes for ``idle_timeout_s`` between frames.

A partial frame is dropped whenever a connection ends (FIN, RST, deadline, shutdown): the
sender never got an ACK for it, so it sends it again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from gateway.config import ListenerSettings
from gateway.errors import ListenError
from gateway.metrics import GatewayMetrics
from gateway.mllp.framing import (
    MAX_PREAMBLE_BYTES,
    SNIFF_BYTES,
    VT,
    FrameDecoder,
    FrameTooLarge,
    encode_frame,
    sniff_protocol,
)
from gateway.mllp.settings import allowed, server_context

log = logging.getLogger("hl7gw.mllp")

FrameHandler = Callable[[bytes, str], Awaitable[bytes | None]]  # None: send no ACK
# (first bytes of an oversized frame, peer) -> the refusal to send, or None for none
OversizeHandler = Callable[[bytes, str], Awaitable[bytes | None]]
READ_SIZE = 64 * 1024
CLOSE_TIMEOUT_S = 5.0  # for a TLS peer to answer close_notify
# TCP keepalive: first probe after 60 s of silence, then every 15 s, give up after 4.
KEEPALIVE_OPTIONS = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4))


class _EndConnection(Exception):
    """The listener ends this connection; ``reset`` aborts (RST) instead of closing (FIN)."""

    def __init__(self, reason: str, *, reset: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reset = reset


class _NotMllp(Exception):
    """The peer speaks something else (``kind``: tls, http, no_vt)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class OpenConnection:
    """One open MLLP connection, for the console's Interfaces page (no message content)."""

    peer: str  # host:port, as intake stores it with each row
    since: float  # Unix seconds: accepted (after the TLS handshake, on a TLS port)
    messages: int = 0  # frames answered on it
    last_message_at: float | None = None


class MllpListener:
    """One listening MLLP port; start() binds, stop() closes and drains."""

    def __init__(self, settings: ListenerSettings, handler: FrameHandler,
                 metrics: GatewayMetrics, *, oversize: OversizeHandler | None = None) -> None:
        self.settings = settings
        self.handler = handler
        self.oversize = oversize
        self.metrics = metrics
        self._ack_latency = metrics.ack_latency.labels(settings.name)  # resolved once
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._open: dict[str, OpenConnection] = {}  # by peer: see open_connections()
        self._networks = [ipaddress.ip_network(c) for c in settings.allow]
        self._tls = server_context(settings.tls) if settings.tls is not None else None
        self.port: int = settings.port

    async def start(self) -> int:
        """Bind and start accepting; return the port actually bound."""
        try:
            self._server = await asyncio.start_server(
                self._on_connection, self.settings.host, self.settings.port,
                reuse_address=True)
        except OSError as exc:  # one line for the operator, not a traceback
            raise ListenError.bind_failed(
                f"MLLP (listener {self.settings.name!r})", self.settings.host,
                self.settings.port, exc, "listeners[].port or hl7gw serve --mllp-port") from None
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("mllp listener started",
                 extra={"listener": self.settings.name, "port": self.port,
                        "tls": self._tls is not None})
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight frames finish (up to ``grace`` s), close the rest."""
        if self._server is None:
            return
        self._server.close()
        for task in self._connections - self._busy:
            task.cancel()  # idle: nothing in flight to finish
        if self._connections:
            _, pending = await asyncio.wait(self._connections, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    def open_connections(self) -> list[OpenConnection]:
        """A snapshot of the connections open now (copies: safe to read anywhere)."""
        return [replace(conn) for conn in self._open.values()]

    def _admission(self, ip: str) -> str | None:
        """Why a new connection from ``ip`` is refused, or None to accept it."""
        if not allowed(ip, self._networks):
            return "allowlist"
        if len(self._connections) >= self.settings.max_connections:
            return "cap"
        cap = self.settings.max_connections_per_ip
        if cap is not None and self._per_ip[ip] >= cap:
            return "per_ip_cap"
        return None

    def _refuse(self, writer: asyncio.StreamWriter, peer: str, reason: str) -> None:
        self.metrics.connections_refused.labels(self.settings.name, reason).inc()
        log.warning("mllp connection refused",
                    extra={"listener": self.settings.name, "peer": peer, "reason": reason})
        writer.transport.abort()

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peername = writer.get_extra_info("peername")
        ip = str(peername[0]) if peername else ""
        peer = f"{peername[0]}:{peername[1]}" if peername else "unknown"
        refusal = self._admission(ip)
        if refusal is not None:
            self._refuse(writer, peer, refusal)
            return
        self._connections.add(task)
        self._per_ip[ip] += 1
        try:
            await self._run_connection(reader, writer, peer)
        except asyncio.CancelledError:
            # stop() cancelled us (possibly while closing). End quietly: asyncio's stream
            # callback calls task.exception() and would log a cancelled task as an error.
            pass
        finally:
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]
            self._connections.discard(task)
            self._busy.discard(task)

    async def _run_connection(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter, peer: str) -> None:
        name = self.settings.name
        if self.settings.keepalive:
            _set_keepalive(writer)
        if self._tls is not None and not await self._handshake(writer, peer):
            return
        self.metrics.connections.labels(name).inc()
        self.metrics.connections_total.labels(name).inc()
        self._open[peer] = OpenConnection(peer, time.time())
        decoder = FrameDecoder(max_frame_bytes=self.settings.max_frame_bytes,
                               strict_end=self.settings.strict_frame_end)
        abort = True
        try:
            await self._serve(reader, writer, decoder, peer)
            abort = False
        except FrameTooLarge:
            self._ended(peer, "frame_too_large", limit=self.settings.max_frame_bytes)
        except _EndConnection as end:
            self._ended(peer, end.reason)
            abort = end.reset
        except _NotMllp as exc:
            self.metrics.non_mllp.labels(name, exc.kind).inc()
            self._refuse(writer, peer, "non_mllp")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the peer went away (RST); any partial frame is dropped below
        except OSError as exc:  # ssl.SSLError on a TLS connection: a broken record
            log.info("mllp connection failed",
                     extra={"listener": name, "peer": peer, "error_class": type(exc).__name__})
        except asyncio.CancelledError:
            pass  # stop(): nothing in flight, or the grace period is over
        except Exception as exc:  # noqa: BLE001 - one bad connection must not stop the port
            log.error("connection failed", extra={"listener": name, "peer": peer,
                                                   "error_class": type(exc).__name__})
        finally:
            if decoder.in_frame:
                self.metrics.partial_frames.labels(name).inc()
                log.info("partial frame dropped", extra={"listener": name, "peer": peer,
                                                         "bytes": decoder.buffered})
            if decoder.discarded_bytes:
                self.metrics.discarded_bytes.labels(name).inc(decoder.discarded_bytes)
            self.metrics.connections.labels(name).dec()
            self._open.pop(peer, None)
            await _close(writer, abort=abort)

    async def _handshake(self, writer: asyncio.StreamWriter, peer: str) -> bool:
        """TLS server handshake, bounded by the frame timeout; False (and closed) if it fails."""
        assert self._tls is not None
        try:
            await writer.start_tls(self._tls,
                                   ssl_handshake_timeout=self.settings.frame_timeout_s)
        except (OSError, TimeoutError) as exc:
            self.metrics.connections_refused.labels(self.settings.name, "tls_handshake").inc()
            log.warning("tls handshake failed",
                        extra={"listener": self.settings.name, "peer": peer,
                               "error_class": type(exc).__name__})
            writer.transport.abort()
            return False
        except asyncio.CancelledError:
            writer.transport.abort()  # stop() during the handshake
            raise
        return True

    def _ended(self, peer: str, reason: str, **extra: object) -> None:
        self.metrics.connections_reset.labels(self.settings.name, reason).inc()
        log.warning("mllp connection ended by the listener",
                    extra={"listener": self.settings.name, "peer": peer, "reason": reason,
                           **extra})

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     decoder: FrameDecoder, peer: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        head: bytes | None = b""  # the first bytes, until they show the protocol
        deadline: float | None = None  # when the frame (or the sniffed head) must be done
        while True:
            data = await self._read(reader, deadline)
            if not data:
                return  # FIN: a partial frame, if any, is dropped
            if head is not None:
                head += data
                kind = sniff_protocol(head[:SNIFF_BYTES])
                if kind is None:
                    deadline = deadline or loop.time() + self.settings.frame_timeout_s
                    continue
                if kind != "mllp":
                    raise _NotMllp(kind)
                data, head, deadline = head, None, None
            if not decoder.seen_start:
                before = data.find(VT)
                if decoder.discarded_bytes + (len(data) if before < 0 else before) \
                        > MAX_PREAMBLE_BYTES:
                    raise _NotMllp("no_vt")
            self._busy.add(task)  # a frame may be in flight: stop() lets it finish
            try:
                try:
                    frames = decoder.feed(data)
                except FrameTooLarge as too_large:
                    frames = await self._refuse_oversized(too_large, decoder, writer, peer)
                if not decoder.in_frame:
                    deadline = None
                elif deadline is None or frames:  # a new frame started in this chunk
                    deadline = loop.time() + self.settings.frame_timeout_s
                for frame in frames:
                    await self._answer(frame, writer, peer)
            finally:
                if not decoder.in_frame:
                    self._busy.discard(task)
            if self._server is not None and not self._server.is_serving() \
                    and not decoder.in_frame:
                return  # shutting down and nothing half-received

    async def _read(self, reader: asyncio.StreamReader, deadline: float | None) -> bytes:
        """The next bytes, within the frame deadline (in a frame) or the idle timeout."""
        if deadline is None:
            timeout, reason = self.settings.idle_timeout_s, "idle_timeout"
        else:
            timeout = deadline - asyncio.get_running_loop().time()
            reason = "frame_timeout"
        try:
            async with asyncio.timeout(max(timeout, 0)):
                return await reader.read(READ_SIZE)
        except TimeoutError:
            raise _EndConnection(reason, reset=reason != "idle_timeout") from None

    async def _refuse_oversized(self, too_large: FrameTooLarge, decoder: FrameDecoder,
                                writer: asyncio.StreamWriter, peer: str) -> list[bytes]:
        """Answer the frames before an oversized one, refuse it, and return those after it.

        Without an ``oversize`` handler the error goes on up and the connection is reset.
        """
        while True:
            for frame in too_large.frames:  # whole messages sent before it: answer
                await self._answer(frame, writer, peer)
            if self.oversize is None:
                raise too_large
            self.metrics.oversize_frames.labels(self.settings.name).inc()
            started = time.perf_counter()
            await self._send(await self.oversize(too_large.head, peer), writer, started)
            try:
                return decoder.feed(too_large.rest) if too_large.rest else []
            except FrameTooLarge as again:
                too_large = again

    async def _answer(self, frame: bytes, writer: asyncio.StreamWriter, peer: str) -> None:
        started = time.perf_counter()
        await self._send(await self.handler(frame, peer), writer, started)
        conn = self._open.get(peer)
        if conn is not None:
            conn.messages += 1
            conn.last_message_at = time.time()

    async def _send(self, ack: bytes | None, writer: asyncio.StreamWriter,
                    started: float) -> None:
        if ack is None:
            return  # enhanced mode asked for no accept acknowledgement
        writer.write(encode_frame(ack))
        if writer.transport.get_write_buffer_size():  # else the socket took it all at once
            try:
                async with asyncio.timeout(self.settings.frame_timeout_s):
                    await writer.drain()  # a peer that never reads its ACKs cannot pin us
            except TimeoutError:
                raise _EndConnection("write_timeout") from None
        self._ack_latency.observe(
            time.perf_counter() - started)


async def _close(writer: asyncio.StreamWriter, *, abort: bool) -> None:
    """Close (FIN; TLS close_notify) or abort (RST); never leave a transport half-closed."""
    if abort:
        writer.transport.abort()
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await writer.wait_closed()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise
    except Exception:  # noqa: BLE001 - a peer that never finishes the close is cut off
        writer.transport.abort()


def _set_keepalive(writer: asyncio.StreamWriter) -> None:
    """Turn on TCP keepalive so a peer that vanished (no FIN, no RST) is noticed."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in KEEPALIVE_OPTIONS:
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
