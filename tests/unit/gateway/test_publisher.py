"""Publisher logic with a scripted producer (the real broker is in the integration tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from connectors.errors import PublishError
from connectors.events import Event
from gateway.metrics import GatewayMetrics
from gateway.mllp.client import split_messages
from gateway.publisher import Publisher, event_for
from gateway.spool import Accepted, Spool


class ScriptedProducer:
    """Acks every event except those whose spool row is listed in ``fail_rows``."""

    def __init__(self) -> None:
        self.sent: list[Event] = []
        self.fail_rows: set[str] = set()
        self.offset = 0

    async def send_batch(self, topic: str, events: Sequence[Event]
                         ) -> list[tuple[int, int] | PublishError]:
        out: list[tuple[int, int] | PublishError] = []
        for event in events:
            if event.extensions["hl7spoolrow"] in self.fail_rows:
                out.append(PublishError("broker said no", retriable=True))
                continue
            self.sent.append(event)
            out.append((0, self.offset))
            self.offset += 1
        return out


SAMPLE = split_messages(Path("samples/adt_a01.hl7").read_bytes())[0]


def row(i: int, raw: bytes = SAMPLE) -> Accepted:
    return Accepted(listener="l", peer="p", sender="S|F", control_id=f"M{i}",
                    message_type="ADT^A01", sha256=f"s{i}", raw=raw, ack=b"a",
                    event_id=f"ev{i}")


def publisher(spool: Spool, producer: ScriptedProducer) -> Publisher:
    return Publisher(spool, producer, GatewayMetrics(), topic="t",  # type: ignore[arg-type]
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
    with pytest.raises(PublishError):
        await pub.drain_once()
    # rows 0 and 1 are done; 2 failed; 3 and 4 were sent but are sent again (order kept)
    assert [r.id for r in await spool.pending()] == ids[2:]
    producer.fail_rows.clear()
    assert await pub.drain_once() == 3
    assert [e.id for e in producer.sent] == ["ev0", "ev1", "ev3", "ev4", "ev2", "ev3", "ev4"]
    assert await spool.depth() == 0


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
    assert set(summary) == {"issues", "unmapped"}


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
