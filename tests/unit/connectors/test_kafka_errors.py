"""The aiokafka error boundary: every aiokafka error class has a decision, and it is used."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any, ClassVar

import aiokafka.errors as aiokafka_errors
import pytest

from connectors.errors import ConnectorError, PublishError
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.kafka import producer as producer_module
from connectors.kafka.errors import (
    _FAIL,
    _RECREATE,
    _RETRY,
    DECISIONS,
    Decision,
    KafkaClientError,
    KafkaPublishError,
    decide,
    kafka_errors,
    translate,
)
from connectors.settings import KafkaSettings


def aiokafka_error_classes() -> list[type[BaseException]]:
    return [cls for _, cls in inspect.getmembers(aiokafka_errors, inspect.isclass)
            if issubclass(cls, BaseException) and cls.__module__ == aiokafka_errors.__name__]


def test_every_aiokafka_error_class_has_a_decision() -> None:
    # Fails when an aiokafka upgrade adds an error class: decide RETRY, RECREATE or FAIL.
    missing = sorted(cls.__name__ for cls in aiokafka_error_classes() if cls not in DECISIONS)
    assert missing == []


def test_every_listed_name_exists_and_is_listed_once() -> None:
    names = [*_RETRY, *_RECREATE, *_FAIL]
    assert len(names) == len(set(names))
    assert sorted(n for n in names if not hasattr(aiokafka_errors, n)) == []


@pytest.mark.parametrize(("error", "decision"), [
    (aiokafka_errors.OutOfOrderSequenceNumber(), Decision.RECREATE),
    (aiokafka_errors.UnknownProducerId(), Decision.RECREATE),
    (aiokafka_errors.ProducerFenced(), Decision.RECREATE),
    (aiokafka_errors.KafkaError("sender died"), Decision.RECREATE),
    (aiokafka_errors.KafkaConnectionError(), Decision.RETRY),
    (aiokafka_errors.KafkaTimeoutError(), Decision.RETRY),
    (aiokafka_errors.NotLeaderForPartitionError(), Decision.RETRY),
    (aiokafka_errors.UnknownTopicOrPartitionError(), Decision.RETRY),
    (aiokafka_errors.MessageSizeTooLargeError(), Decision.FAIL),
    (aiokafka_errors.TopicAuthorizationFailedError(), Decision.FAIL),
    (aiokafka_errors.SaslAuthenticationFailed(), Decision.FAIL),
])
def test_decisions(error: BaseException, decision: Decision) -> None:
    assert decide(error) is decision


def test_unknown_subclass_takes_its_nearest_ancestors_decision() -> None:
    class NewTimeout(aiokafka_errors.RequestTimedOutError):  # type: ignore[misc]
        pass

    assert decide(NewTimeout()) is Decision.RETRY


def test_publish_error_carries_policy_and_cause() -> None:
    error = translate(aiokafka_errors.MessageSizeTooLargeError(), "sending to 'hl7.fhir'")
    assert isinstance(error, PublishError)
    assert (error.retriable, error.cause, error.client_broken) == (
        False, "MessageSizeTooLargeError", False)
    assert "hl7.fhir" in str(error)
    broken = translate(aiokafka_errors.OutOfOrderSequenceNumber(), "t")
    assert (broken.retriable, broken.client_broken) == (True, True)
    assert translate(aiokafka_errors.KafkaConnectionError(), "t").retriable is True


@pytest.mark.parametrize("cls", aiokafka_error_classes(), ids=lambda c: c.__name__)
def test_the_boundary_translates_every_aiokafka_error(cls: type[BaseException]) -> None:
    # Fails when an aiokafka error class cannot be raised through the boundary as ours.
    decision = decide(cls())
    for kind in (KafkaPublishError, KafkaClientError):
        with pytest.raises(kind) as caught, kafka_errors("doing x", kind):
            raise cls()
        error = caught.value
        assert isinstance(error, KafkaPublishError | KafkaClientError)
        assert isinstance(error, ConnectorError)
        assert error.cause == cls.__name__
        assert error.retriable is (decision is not Decision.FAIL)
        assert error.client_broken is (decision is Decision.RECREATE)
        assert isinstance(error.__cause__, cls)


@pytest.mark.parametrize("error", [ValueError("bug"), asyncio.CancelledError(),
                                   KeyboardInterrupt()])
def test_the_boundary_lets_other_errors_through(error: BaseException) -> None:
    with pytest.raises(type(error)), kafka_errors("doing x"):
        raise error


def test_only_the_boundary_matches_aiokafka_errors() -> None:
    # Callers read retriable / client_broken; nobody else decides on aiokafka classes.
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[3]
    offenders = []
    for package in ("connectors", "gateway"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            if path.name == "errors.py" and path.parent.name == "kafka":
                continue
            if "is_kafka_error" in text or "decide(" in text:
                offenders.append(str(path.relative_to(root)))
    assert offenders == []


class ScriptedProducer:
    """Stands in for AIOKafkaProducer in these unit tests only; fails as scripted."""

    instances: ClassVar[list[ScriptedProducer]] = []
    failures: ClassVar[list[BaseException]] = []  # raised by send_and_wait, in turn
    acks: ClassVar[list[BaseException | None]] = []  # per send(): fail its future, or ack
    refuse_at: ClassVar[int | None] = None  # send() number that raises while queueing

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.started = self.stopped = False
        ScriptedProducer.instances.append(self)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send_and_wait(self, topic: str, **_: Any) -> SimpleNamespace:
        if ScriptedProducer.failures:
            raise ScriptedProducer.failures.pop(0)
        return SimpleNamespace(partition=1, offset=42)

    async def send(self, topic: str, **_: Any) -> asyncio.Future[SimpleNamespace]:
        number = self.sent = getattr(self, "sent", 0) + 1
        if number == ScriptedProducer.refuse_at:
            raise aiokafka_errors.KafkaTimeoutError()
        future: asyncio.Future[SimpleNamespace] = asyncio.get_running_loop().create_future()
        failure = ScriptedProducer.acks.pop(0) if ScriptedProducer.acks else None
        if failure is None:
            future.set_result(SimpleNamespace(partition=0, offset=number - 1))
        else:
            future.set_exception(failure)
        return future


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedProducer]:
    ScriptedProducer.instances = []
    ScriptedProducer.failures = []
    ScriptedProducer.acks = []
    ScriptedProducer.refuse_at = None
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", ScriptedProducer)
    return ScriptedProducer


EVENT = Event(id="e1", source="urn:s", type="t", subject=None, time=None, key=b"k", data=b"{}")
SETTINGS = KafkaSettings(bootstrap_servers="127.0.0.1:1")


async def test_producer_is_idempotent_with_acks_all(scripted: type[ScriptedProducer]) -> None:
    async with EventProducer(SETTINGS) as producer:
        assert await producer.send("t", EVENT) == (1, 42)
    options = scripted.instances[0].options
    assert options["enable_idempotence"] is True
    assert options["acks"] == "all"
    assert scripted.instances[0].stopped


async def test_fatal_producer_error_recreates_the_producer(
        scripted: type[ScriptedProducer]) -> None:
    scripted.failures = [aiokafka_errors.OutOfOrderSequenceNumber()]
    async with EventProducer(SETTINGS) as producer:
        with pytest.raises(PublishError) as caught:
            await producer.send("t", EVENT)
        assert caught.value.retriable is True
        assert caught.value.cause == "OutOfOrderSequenceNumber"
        assert len(scripted.instances) == 2
        assert scripted.instances[0].stopped and scripted.instances[1].started
        assert await producer.send("t", EVENT) == (1, 42)


async def test_transient_error_keeps_the_producer(scripted: type[ScriptedProducer]) -> None:
    scripted.failures = [aiokafka_errors.KafkaTimeoutError()]
    async with EventProducer(SETTINGS) as producer:
        with pytest.raises(PublishError) as caught:
            await producer.send("t", EVENT)
        assert caught.value.retriable is True
        assert len(scripted.instances) == 1


async def test_stop_is_idempotent_and_send_after_stop_fails(
        scripted: type[ScriptedProducer]) -> None:
    producer = EventProducer(SETTINGS)
    await producer.stop()
    await producer.start()
    await producer.stop()
    await producer.stop()
    with pytest.raises(PublishError, match="not started") as caught:
        await producer.send("t", EVENT)
    assert caught.value.retriable is False


def events(count: int) -> list[Event]:
    return [Event(id=f"e{n}", source="urn:s", type="t", subject=None, time=None, key=b"k",
                  data=b"{}") for n in range(count)]


async def test_send_batch_results_in_order(scripted: type[ScriptedProducer]) -> None:
    scripted.acks = [None, aiokafka_errors.NotLeaderForPartitionError(), None]
    async with EventProducer(SETTINGS) as producer:
        results = await producer.send_batch("t", events(3))
    assert results[0] == (0, 0) and results[2] == (0, 2)
    assert isinstance(results[1], PublishError) and results[1].retriable
    assert results[1].cause == "NotLeaderForPartitionError"


async def test_send_batch_stops_queueing_at_the_first_refusal(
        scripted: type[ScriptedProducer]) -> None:
    scripted.refuse_at = 3
    async with EventProducer(SETTINGS) as producer:
        results = await producer.send_batch("t", events(5))
    assert results[:2] == [(0, 0), (0, 1)]
    errors = results[2:]
    assert all(isinstance(e, PublishError) and e.retriable for e in errors)
    assert [e.cause for e in errors if isinstance(e, PublishError)] == [
        "KafkaTimeoutError", None, None]


async def test_send_batch_recreates_after_a_fatal_error_once(
        scripted: type[ScriptedProducer]) -> None:
    scripted.acks = [aiokafka_errors.OutOfOrderSequenceNumber()] * 2
    async with EventProducer(SETTINGS) as producer:
        results = await producer.send_batch("t", events(2))
        assert all(isinstance(r, PublishError) for r in results)
        assert len(scripted.instances) == 2  # one recreation for the whole batch


class FlushForever(ScriptedProducer):
    """aiokafka's stop() with the leader unreachable: the flush waits until records fail."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.failed_with: BaseException | None = None
        self._flushed = asyncio.Event()
        self._message_accumulator = self

    def fail_all(self, exception: BaseException) -> None:
        self.failed_with = exception
        self._flushed.set()

    async def stop(self) -> None:
        await self._flushed.wait()
        self.stopped = True


async def test_stop_abandons_unacknowledged_records_at_its_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 16.8: with the broker down, stopping waited for it to come back.
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", FlushForever)
    producer = EventProducer(SETTINGS)
    await producer.start()
    scripted = producer._producer
    await asyncio.wait_for(producer.stop(flush_within=0.2), 5)
    assert scripted.stopped
    # An aiokafka error, so each waiting sender gets a retriable PublishError.
    assert isinstance(scripted.failed_with, aiokafka_errors.KafkaTimeoutError)
