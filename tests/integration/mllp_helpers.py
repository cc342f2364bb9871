"""Helpers for listener tests over real sockets: a listener with a tiny handler, raw peers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from typing import Any

from gateway.config import ListenerSettings
from gateway.metrics import GatewayMetrics
from gateway.mllp.framing import FrameDecoder, encode_frame
from gateway.mllp.server import FrameHandler, MllpListener

STEP = 5.0  # the most any single socket step in these tests may take


async def ack_handler(frame: bytes, peer: str) -> bytes:
    """An ACK naming the frame: MSA-2 is the frame's first bytes (an id, never PHI here)."""
    return b"MSH|^~\\&|GW|T|S|F|20240101||ACK|A1|P|2.5.1\rMSA|AA|" + frame[:24] + b"\r"


class Listening:
    """A started listener, its metrics, and the frames its handler saw."""

    def __init__(self, listener: MllpListener, metrics: GatewayMetrics) -> None:
        self.listener = listener
        self.metrics = metrics
        self.seen: list[bytes] = []

    @property
    def port(self) -> int:
        return self.listener.port

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, {"listener": "t", **labels})
        return value or 0.0


@contextlib.asynccontextmanager
async def listening(handler: FrameHandler | None = None,
                    listener_class: type[MllpListener] = MllpListener,
                    **settings: Any) -> AsyncIterator[Listening]:
    """Run an MllpListener on a free loopback port with ``settings`` for the test's duration."""
    metrics = GatewayMetrics()
    inner = handler or ack_handler
    holder: list[Listening] = []

    async def recording(frame: bytes, peer: str) -> bytes | None:
        holder[0].seen.append(frame)
        return await inner(frame, peer)

    listener = listener_class(ListenerSettings(name="t", port=0, **settings), recording, metrics)
    running = Listening(listener, metrics)
    holder.append(running)
    await listener.start()
    try:
        yield running
    finally:
        await asyncio.wait_for(listener.stop(grace=1.0), STEP)


@contextlib.asynccontextmanager
async def peer(port: int, tls: ssl.SSLContext | None = None
               ) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw client connection, closed (or aborted) at the end."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=tls), STEP)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), STEP)
        writer.transport.abort()  # a TLS close the listener never answered: cut it off


async def read_frames(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    """Exactly ``count`` frames from the peer, each within STEP seconds."""
    decoder = FrameDecoder()
    frames: list[bytes] = []
    while len(frames) < count:
        data = await asyncio.wait_for(reader.read(65536), STEP)
        assert data, f"connection closed after {len(frames)} of {count} frames"
        frames += decoder.feed(data)
    return frames


async def roundtrip(port: int, payload: bytes, tls: ssl.SSLContext | None = None) -> bytes:
    """Send one frame on a new connection and return its ACK frame."""
    async with peer(port, tls) as (reader, writer):
        writer.write(encode_frame(payload))
        await writer.drain()
        return (await read_frames(reader, 1))[0]


async def closed_by_listener(reader: asyncio.StreamReader, within: float = STEP) -> bytes:
    """Read until the listener closes (FIN or RST); the bytes it sent first (no ACK: b"")."""
    received = b""
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                received += chunk
    return received


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN (SO_LINGER on, timeout 0)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def wait_for_metric(running: Listening, name: str, value: float = 1.0,
                          **labels: str) -> None:
    """Wait (bounded) until a metric reaches ``value``: the listener counts after closing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP
    while running.sample(name, **labels) < value:
        assert loop.time() < deadline, f"{name}{labels} never reached {value}"
        await asyncio.sleep(0.01)
