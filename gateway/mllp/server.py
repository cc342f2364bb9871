"""MLLP listener: accepts connections, reads frames, answers each with its ACK in order.

Frames on one connection are handled one after another, so ACKs leave in the order the
messages arrived (senders rely on that). A frame larger than the limit resets the
connection without an ACK and without buffering the rest. Nothing a peer sends can stop
the listener: every connection's failure stays in that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.config import ListenerSettings
from gateway.metrics import GatewayMetrics
from gateway.mllp.framing import FrameDecoder, FrameTooLarge, encode_frame

log = logging.getLogger("hl7gw.mllp")

FrameHandler = Callable[[bytes, str], Awaitable[bytes]]
READ_SIZE = 64 * 1024


class MllpListener:
    """One listening MLLP port; start() binds, stop() closes and drains."""

    def __init__(self, settings: ListenerSettings, handler: FrameHandler,
                 metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.handler = handler
        self.metrics = metrics
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()
        self.port: int = settings.port

    async def start(self) -> int:
        """Bind and start accepting; return the port actually bound."""
        self._server = await asyncio.start_server(
            self._on_connection, self.settings.host, self.settings.port,
            reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("mllp listener started",
                 extra={"listener": self.settings.name, "port": self.port})
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

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        name = self.settings.name
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "unknown"
        self.metrics.connections.labels(name).inc()
        self.metrics.connections_total.labels(name).inc()
        decoder = FrameDecoder(max_frame_bytes=self.settings.max_frame_bytes,
                               strict_end=self.settings.strict_frame_end)
        try:
            await self._serve(reader, writer, decoder, peer)
        except FrameTooLarge:
            log.warning("frame too large, connection reset",
                        extra={"listener": name, "peer": peer,
                               "limit": self.settings.max_frame_bytes})
            writer.transport.abort()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            writer.transport.abort()
        except Exception as exc:  # noqa: BLE001 - one bad connection must not stop the port
            log.error("connection failed", extra={"listener": name, "peer": peer,
                                                   "error_class": type(exc).__name__})
            writer.transport.abort()
        finally:
            if decoder.discarded_bytes:
                self.metrics.discarded_bytes.labels(name).inc(decoder.discarded_bytes)
            self.metrics.connections.labels(name).dec()
            self._connections.discard(task)
            self._busy.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     decoder: FrameDecoder, peer: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                return  # FIN: a partial frame, if any, is dropped
            self._busy.add(task)  # a frame may be in flight: stop() lets it finish
            try:
                for frame in decoder.feed(data):
                    started = time.perf_counter()
                    ack = await self.handler(frame, peer)
                    writer.write(encode_frame(ack))
                    await writer.drain()
                    self.metrics.ack_latency.labels(self.settings.name).observe(
                        time.perf_counter() - started)
            finally:
                if not decoder.in_frame:
                    self._busy.discard(task)
            if self._server is not None and not self._server.is_serving() \
                    and not decoder.in_frame:
                return  # shutting down and nothing half-received
