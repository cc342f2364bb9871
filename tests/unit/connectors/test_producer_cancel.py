"""A producer start cancelled midway must not leak its aiokafka client."""

from __future__ import annotations

import asyncio
import contextlib
import gc

from connectors.kafka import EventProducer
from connectors.settings import KafkaSettings


async def test_cancelled_start_closes_the_client() -> None:
    # A peer that accepts connections and never answers: start() hangs in bootstrap.
    peers: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    producer = EventProducer(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}",
                                           request_timeout_ms=20000))
    task = asyncio.create_task(producer.start())
    await asyncio.sleep(0.3)
    assert not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await producer.stop()
    for writer in peers:
        writer.close()
    silent.close()
    await silent.wait_closed()
    # An unclosed AIOKafkaProducer warns from __del__; warnings are errors in this suite.
    gc.collect()
    await asyncio.sleep(0)
