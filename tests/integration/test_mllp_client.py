"""The MLLP client against real sockets: an ACK in pieces, ACKs together, a peer that goes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway.mllp.client import MllpClient, MllpConnectionLost
from gateway.mllp.framing import encode_frame

pytestmark = pytest.mark.integration
Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


@asynccontextmanager
async def peer(behaviour: Peer) -> AsyncIterator[int]:
    """A server on a free port that treats each connection with ``behaviour``, then
    closes it; every connection has been handled when the block ends."""
    handled: list[asyncio.Task[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await behaviour(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handled.append(asyncio.ensure_future(handle(reader, writer)))

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await asyncio.wait_for(asyncio.gather(*handled), 10)
        await server.wait_closed()


async def test_an_ack_written_in_pieces_is_one_answer() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        frame = encode_frame(b"MSA|AA|1\r")
        for i in range(0, len(frame), 3):  # three bytes at a time, a pause between
            writer.write(frame[i:i + 3])
            await writer.drain()
            await asyncio.sleep(0.01)
        await reader.read()

    async with peer(slow) as port, MllpClient("127.0.0.1", port, timeout=10) as client:
        assert await client.send(b"MSH|^~\\&|A\r") == b"MSA|AA|1\r"


async def test_acks_that_arrive_together_are_read_one_by_one() -> None:
    async def both(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(encode_frame(b"MSA|AA|1\r") + encode_frame(b"MSA|AE|2\r"))
        await writer.drain()
        await reader.read()

    async with peer(both) as port, MllpClient("127.0.0.1", port, timeout=10) as client:
        await client.write(b"MSH|^~\\&|A\r")
        assert await client.read_ack() == b"MSA|AA|1\r"
        assert await client.read_ack(within=0) == b"MSA|AE|2\r"  # already here: no wait
        with pytest.raises(MllpConnectionLost, match=r"no ACK within 0\.2 s"):
            await client.read_ack(within=0.2)


async def test_a_peer_that_closes_before_answering_is_a_lost_connection() -> None:
    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)

    async with peer(rude) as port, MllpClient("127.0.0.1", port, timeout=10) as client:
        with pytest.raises(MllpConnectionLost,
                           match="connection closed by the peer before the ACK"):
            await client.send(b"MSH|^~\\&|A\r")
