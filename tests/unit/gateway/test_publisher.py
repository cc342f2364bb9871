"""Publisher logic with a scripted producer (the real broker is in the integration tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from connectors.errors import PublishError
from connectors.events import Event
from connectors.kafka.producer import NotSent
from connectors.settings import KafkaSettings, TopicRoute
from gateway.metrics import GatewayMetrics
from gateway.mllp.client import split_messages
from gateway.publisher import Publisher, event_for
from gateway.spool import Accepted, MessageFilter, Spool
from tests.support import SAMPLES


class ScriptedProducer:
    """Acks every event except those whose spool row is listed in ``fail_rows``."""

    def __init__(self) -> None:
        self.sent: list[Event] = []
        self.topics: list[str] = []
        self.fail_rows: set[str] = set()
        self.fail_topics: set[str] = set()
        self.refuse_rows: set[str] = set()  # refused for good once queued (broker side)
        self.refuse_queueing: set[str] = set()  # refused for good at send() (client side)
        self.offset = 0

    async def send_batch(self, topic: str, events: Sequence[Event]
                         ) -> list[tuple[int, int] | PublishError]:
        out: list[tuple[int, int] | PublishError] = []
        for event in events:
            row_id = event.extensions["hl7spoolrow"]
            if row_id in self.refuse_queueing:
                out.append(PublishError("too large", retriable=False,
                                        cause="MessageSizeTooLargeError"))
                out.extend(NotSent() for _ in range(len(events) - len(out)))
                return out
            if row_id in self.refuse_rows:
                out.append(PublishError("too large", retriable=False,
                                        cause="MessageSizeTooLargeError"))
                continue
            if row_id in self.fail_rows or topic in self.fail_topics:
                out.append(PublishError("broker said no", retriable=True))
                continue
            self.sent.append(event)
            self.topics.append(topic)
            out.append((0, self.offset))
            self.offset += 1
        return out


SAMPLE = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]


def row(i: int, raw: bytes = SAMPLE, message_type: str = "ADT^A01") -> Accepted:
    return Accepted(listener="l", peer="p", sender="S|F", control_id=f"M{i}",
                    message_type=message_type, sha256=f"s{i}", raw=raw, ack=b"a",
                    event_id=f"ev{i}")


def publisher(spool: Spool, producer: ScriptedProducer,
              kafka: KafkaSettings | None = None) -> Publisher:
    return Publisher(spool, producer, GatewayMetrics(),  # type: ignore[arg-type]
                     kafka=kafka or KafkaSettings(bootstrap_servers="unused:1", topic="t"),
                     source="urn:test")


async def test_rows_are_sent_in_spool_order_and_marked(spool: Spool) -> None:
    for i in range(5):
        await spool.store(row(i))
    producer = ScriptedProducer()
    assert await publisher(spool, producer).drain_once() == 5
    assert [e.id for e in producer.sent] == [f"ev{i}" for i in range(5)]
    assert await spool.depth() == 0


async def test_a_failure_marks_only_the_rows_before_it(spool: Spool) -> None:
    ids = [(await spool.store(row(i))).row_id for i in range(5)]
    producer = ScriptedProducer()
    producer.fail_rows = {str(ids[2])}
    pub = publisher(spool, producer)
    assert await pub.drain_once() == 2  # progress: the failure waits for the next pass
    # rows 0 and 1 are done; 2 failed; 3 and 4 were sent but are sent again (order kept)
    assert [r.id for r in await spool.pending()] == ids[2:]
    with pytest.raises(PublishError):  # no row can move: now the failure is raised
        await pub.drain_once()
    assert [r.id for r in await spool.pending()] == ids[2:]
    producer.fail_rows.clear()
    assert await pub.drain_once() == 3
    assert [e.id for e in producer.sent] == ["ev0", "ev1", "ev3", "ev4", "ev3", "ev4",
                                             "ev2", "ev3", "ev4"]
    assert await spool.depth() == 0


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_a_row_kafka_refuses_for_good_is_failed_and_the_rest_goes_on(
        spool: Spool) -> None:
    # Issue 16.4: a record too large for Kafka was retried forever and held back every
    # later row; now it is marked failed with the reason and the later rows go out.
    ids = [(await spool.store(row(i))).row_id for i in range(5)]
    producer = ScriptedProducer()
    producer.refuse_rows = {str(ids[2])}
    pub = publisher(spool, producer)
    assert await pub.drain_once() == 5
    assert [e.id for e in producer.sent] == ["ev0", "ev1", "ev3", "ev4"]
    assert await spool.depth() == 0
    [failed] = await spool.find(MessageFilter(status="failed"))
    assert failed.id == ids[2]
    assert failed.last_error == "not published (MessageSizeTooLargeError): too large"
    assert sample(pub.metrics, "hl7gw_publish_refused_total", topic="t",
                  error_class="MessageSizeTooLargeError") == 1
    assert sample(pub.metrics, "hl7gw_publish_errors_total", topic="t") is None
    # replayable: once the limit is raised, the row goes out like any other
    await spool.replay(MessageFilter(ids=(ids[2],)))
    producer.refuse_rows.clear()
    assert await pub.drain_once() == 1
    assert producer.sent[-1].id.startswith("ev2")  # a replay's event id says so (ev2-r1)


async def test_a_record_refused_while_queueing_fails_its_row_only(spool: Spool) -> None:
    ids = [(await spool.store(row(i))).row_id for i in range(5)]
    producer = ScriptedProducer()
    producer.refuse_queueing = {str(ids[1])}
    pub = publisher(spool, producer)
    assert await pub.drain_once() == 2  # row 0 published, row 1 failed; 2.. not sent yet
    assert await pub.drain_once() == 3
    assert [e.id for e in producer.sent] == ["ev0", "ev2", "ev3", "ev4"]
    assert (await spool.counts())["failed"] == 1


async def test_spool_depth_metric_counts_rows_while_publishing_fails(spool: Spool) -> None:
    # Issue 16.4: hl7gw_spool_depth showed 0 while every pass failed (it was only set
    # after a pass that succeeded).
    for i in range(3):
        await spool.store(row(i))
    producer = ScriptedProducer()
    producer.fail_topics = {"t"}
    pub = publisher(spool, producer)
    with pytest.raises(PublishError):
        await pub.drain_once()
    assert sample(pub.metrics, "hl7gw_spool_depth") == 3
    await spool.store(row(3))
    assert sample(pub.metrics, "hl7gw_spool_depth") == 4
    producer.fail_topics.clear()
    await pub.drain_once()
    assert sample(pub.metrics, "hl7gw_spool_depth") == 0
    assert sample(pub.metrics, "hl7gw_kafka_up") == 1


async def test_unmappable_row_is_marked_failed_and_the_rest_goes_on(spool: Spool) -> None:
    no_pid = b"\r".join(s for s in SAMPLE.split(b"\r") if not s.startswith(b"PID"))
    await spool.store(row(0))
    bad = await spool.store(row(1, raw=no_pid))
    await spool.store(row(2))
    producer = ScriptedProducer()
    pub = publisher(spool, producer)
    assert await pub.drain_once() == 3
    assert [e.id for e in producer.sent] == ["ev0", "ev2"]
    assert await spool.depth() == 0
    assert (await spool.counts())["failed"] == 1
    assert pub.metrics.mapping_failures._value.get() == 1
    assert bad.row_id not in [int(e.extensions["hl7spoolrow"]) for e in producer.sent]


async def test_published_event_is_the_mapped_bundle(spool: Spool) -> None:
    import orjson

    import mappers

    await spool.store(row(0))
    producer = ScriptedProducer()
    await publisher(spool, producer).drain_once()
    expected = mappers.convert(SAMPLE.decode())
    assert orjson.loads(producer.sent[0].data) == expected.bundle
    assert producer.sent[0].key == (expected.patient_key or "").encode()
    summary = orjson.loads(producer.sent[0].extensions["hl7summary"])
    assert set(summary) == {"issues", "unmapped", "profile"}
    assert summary["profile"] is None  # no profiles configured


def test_event_carries_ids_not_phi() -> None:
    from gateway.mapping import Mapped
    from gateway.spool import PendingRow

    event = event_for(PendingRow(7, 1_700_000_000.0, "S|F", "M1", "ADT^A08", "ev", b"",
                                 "utf-8", "UTC"), Mapped(b"{}", "pk", "{}"), "urn:src")
    assert event.type == "hl7gw.fhir.adt.a08"
    assert event.subject == "Patient/pk"
    assert event.key == b"pk"
    assert event.time == "2023-11-14T22:13:20Z"
    headers = dict(event.kafka_headers())
    assert headers["ce_id"] == b"ev"
    assert headers["content-type"] == b"application/fhir+json"


async def test_routes_by_message_type_and_resource_type(spool: Spool) -> None:
    a04 = SAMPLE.replace(b"ADT^A01^ADT_A01", b"ADT^A04^ADT_A01", 1)
    await spool.store(row(0))
    await spool.store(row(1, raw=a04, message_type="ADT^A04"))
    kafka = KafkaSettings(bootstrap_servers="unused:1", topic="default", routes=[
        TopicRoute(topic="admissions", message_types=["ADT^A01"]),
        TopicRoute(topic="encounters", resource_types=["Encounter"]),
    ])
    producer = ScriptedProducer()
    await publisher(spool, producer, kafka).drain_once()
    assert producer.topics == ["admissions", "encounters"]


def test_route_wildcard_and_both_conditions() -> None:
    route = TopicRoute(topic="t", message_types=["ADT^*"], resource_types=["Observation"])
    assert not route.matches("ADT^A01", frozenset({"Patient"}))
    assert route.matches("ADT^A08", frozenset({"Patient", "Observation"}))
    assert not route.matches("ORU^R01", frozenset({"Observation"}))


async def test_raw_topic_gets_the_message_and_both_must_succeed(spool: Spool) -> None:
    await spool.store(row(0))
    kafka = KafkaSettings(bootstrap_servers="unused:1", topic="fhir", raw_topic="raw")
    producer = ScriptedProducer()
    producer.fail_topics = {"raw"}
    pub = publisher(spool, producer, kafka)
    with pytest.raises(PublishError):
        await pub.drain_once()
    assert await spool.depth() == 1  # the FHIR record went out, the raw one did not
    producer.fail_topics.clear()
    assert await pub.drain_once() == 1
    raw = next(e for e, t in zip(producer.sent, producer.topics, strict=True) if t == "raw")
    assert raw.data == SAMPLE
    assert raw.content_type == "application/hl7-v2; charset=utf-8"
    assert raw.type == "hl7gw.v2.adt.a01"
    published = await spool.counts()
    assert published["published"] == 1


async def test_run_retries_until_kafka_answers(spool: Spool) -> None:
    await spool.store(row(0))
    producer = ScriptedProducer()
    producer.fail_topics = {"t"}
    pub = publisher(spool, producer)
    pub.max_backoff = 0.2
    task = asyncio.create_task(pub.run())
    await asyncio.sleep(0.8)
    assert not pub.connected and await spool.depth() == 1
    producer.fail_topics.clear()
    for _ in range(50):
        if await spool.depth() == 0:
            break
        await asyncio.sleep(0.1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await spool.depth() == 0 and pub.connected
    assert pub.metrics.publish_errors.labels("t")._value.get() >= 2
