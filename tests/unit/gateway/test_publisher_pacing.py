"""The publisher's pacing: after a partial pass it lingers so rows gather; never after a
full one (a backlog goes out back to back)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from connectors.errors import PublishError
from connectors.events import Event
from connectors.settings import KafkaSettings
from gateway.metrics import GatewayMetrics
from gateway.mllp.client import split_messages
from gateway.publisher import Publisher
from gateway.spool import Accepted, Spool
from tests.support import SAMPLES

SAMPLE = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]


class CountingProducer:
    """Acks everything; remembers how many events each call carried."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def send_batch(self, topic: str, events: Sequence[Event]
                         ) -> list[tuple[int, int] | PublishError]:
        self.calls.append(len(events))
        return [(0, n) for n in range(len(events))]


def row(i: int) -> Accepted:
    return Accepted(listener="l", peer="p", sender="S|F", control_id=f"M{i}",
                    message_type="ADT^A01", sha256=f"s{i}", raw=SAMPLE, ack=b"a",
                    event_id=f"ev{i}")


def publisher(spool: Spool, producer: CountingProducer, *, batch_size: int,
              linger: float) -> Publisher:
    return Publisher(spool, producer, GatewayMetrics(),  # type: ignore[arg-type]
                     kafka=KafkaSettings(bootstrap_servers="unused:1", topic="t"),
                     source="urn:test", batch_size=batch_size, linger=linger)


async def until(condition: Callable[[], object], within: float) -> float:
    """Seconds until ``condition()`` held (or ``within`` passed), polled every 10 ms."""
    began = time.monotonic()
    for _ in range(int(within * 100)):
        if condition():
            break
        await asyncio.sleep(0.01)
    return time.monotonic() - began


async def test_rows_arriving_after_a_partial_pass_go_out_together(spool: Spool) -> None:
    producer = CountingProducer()
    pub = publisher(spool, producer, batch_size=50, linger=0.5)
    await spool.store(row(0))
    task = asyncio.create_task(pub.run())
    try:
        await until(lambda: producer.calls, 5)
        for i in range(1, 5):  # while the publisher lingers after its one-row pass
            await spool.store(row(i))
            pub.wake()
        await until(lambda: sum(producer.calls) == 5, 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert producer.calls == [1, 4]


async def test_full_passes_follow_each_other_without_lingering(spool: Spool) -> None:
    for i in range(6):
        await spool.store(row(i))
    producer = CountingProducer()
    pub = publisher(spool, producer, batch_size=2, linger=5.0)
    task = asyncio.create_task(pub.run())
    try:
        took = await until(lambda: sum(producer.calls) == 6, 4)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert producer.calls == [2, 2, 2]
    assert took < 4  # one linger (5 s) between full passes would have stopped this
