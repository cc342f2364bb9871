"""Producer batches: as large as ``max_request_size``, and small again when a topic refuses.

The real-broker side (a topic whose ``max.message.bytes`` is below the batch size) is in
tests/integration/test_oversize.py; here a scripted client fails records as a broker
would, so the decisions can be checked one by one.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, ClassVar

import aiokafka.errors as aiokafka_errors
import pytest

from connectors.errors import PublishError
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.kafka import producer as producer_module
from connectors.kafka.producer import BATCH_FLOOR, NotSent, ResendAfter
from connectors.settings import KafkaSettings

SETTINGS = KafkaSettings(bootstrap_servers="127.0.0.1:1", max_request_size=1_048_576)


class BrokerLike:
    """Stands in for AIOKafkaProducer: refuses as too large every record whose id is in
    ``too_large``, at the ack like a broker; acks the rest."""

    instances: ClassVar[list[BrokerLike]] = []
    too_large: ClassVar[set[str]] = set()

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.stopped = False
        self.offset = 0
        BrokerLike.instances.append(self)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, *, value: bytes, key: bytes | None,
                   headers: list[tuple[str, bytes]]) -> asyncio.Future[SimpleNamespace]:
        future: asyncio.Future[SimpleNamespace] = asyncio.get_running_loop().create_future()
        if dict(headers)["ce_id"].decode() in BrokerLike.too_large:
            future.set_exception(aiokafka_errors.MessageSizeTooLargeError())
        else:
            future.set_result(SimpleNamespace(partition=0, offset=self.offset))
            self.offset += 1
        return future


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> type[BrokerLike]:
    BrokerLike.instances = []
    BrokerLike.too_large = set()
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", BrokerLike)
    return BrokerLike


def events(count: int, size: int = 6000) -> list[Event]:
    return [Event(id=f"e{n}", source="urn:s", type="t", subject=None, time=None, key=b"k",
                  data=b"x" * size) for n in range(count)]


async def test_batches_are_as_large_as_a_request(broker: type[BrokerLike]) -> None:
    async with EventProducer(SETTINGS) as producer:
        assert producer.batch_size == SETTINGS.max_request_size
    assert broker.instances[0].options["max_batch_size"] == SETTINGS.max_request_size


async def test_a_small_record_refused_as_too_large_makes_batches_small_and_is_sent_again(
        broker: type[BrokerLike]) -> None:
    # A topic below max_request_size refuses a batch of small records: that is the batch
    # size's fault, not e2's; e2 and everything after it are sent again, in order.
    broker.too_large = {"e2", "e3"}
    async with EventProducer(SETTINGS) as producer:
        results = await producer.send_batch("t", events(5))
        assert results[:2] == [(0, 0), (0, 1)]
        assert all(isinstance(r, ResendAfter) and r.retriable for r in results[2:])
        assert isinstance(results[2], NotSent)  # the publisher's "sent again later"
        assert producer.batch_size == BATCH_FLOOR
        assert len(broker.instances) == 2 and broker.instances[0].stopped
        assert broker.instances[1].options["max_batch_size"] == BATCH_FLOOR
        # with small batches a refusal stands: the record is too large on its own
        broker.too_large = {"e2"}
        again = await producer.send_batch("t", events(5)[2:])
    assert isinstance(again[0], PublishError) and not again[0].retriable
    assert again[0].cause == "MessageSizeTooLargeError"
    assert again[1:] == [(0, 0), (0, 1)]
    assert len(broker.instances) == 2  # no second fallback


async def test_a_record_as_large_as_the_batch_is_refused_for_good_at_once(
        broker: type[BrokerLike]) -> None:
    # It travelled alone in its batch: its refusal is its own.
    broker.too_large = {"e1"}
    big = events(3)
    big[1] = Event(id="e1", source="urn:s", type="t", subject=None, time=None, key=b"k",
                   data=b"x" * SETTINGS.max_request_size)
    async with EventProducer(SETTINGS) as producer:
        results = await producer.send_batch("t", big)
        assert producer.batch_size == SETTINGS.max_request_size
    assert results[0] == (0, 0) and results[2] == (0, 1)
    assert isinstance(results[1], PublishError) and not results[1].retriable
    assert len(broker.instances) == 1


async def test_other_failures_leave_the_batch_size_alone(
        broker: type[BrokerLike], monkeypatch: pytest.MonkeyPatch) -> None:
    async def timeout(self: BrokerLike, topic: str, **_: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_exception(aiokafka_errors.KafkaTimeoutError())
        return future

    monkeypatch.setattr(BrokerLike, "send", timeout)
    async with EventProducer(SETTINGS) as producer:
        results = await producer.send_batch("t", events(2))
        assert producer.batch_size == SETTINGS.max_request_size
    assert all(isinstance(r, PublishError) and r.retriable and not isinstance(r, NotSent)
               for r in results)
