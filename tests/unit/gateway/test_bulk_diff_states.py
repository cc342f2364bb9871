"""The diff's answers when there is nothing to compare, and when there is (fakes for the
spool and Kafka; ``read_record`` itself against a port nobody listens on)."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace
from typing import Any

import pytest

from connectors.events import Event
from connectors.settings import KafkaSettings
from gateway.console import diffview
from gateway.console.kafka_read import KafkaRecord, read_record
from gateway.console.mapview import MappingView
from gateway.errors import BrokerUnavailable
from gateway.spool import MessageInfo
from gateway.spool.records import StoredBody

BUNDLE: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction", "entry": [
    {"resource": {"resourceType": "Patient", "id": "p1", "gender": "male"}}]}


def info(published: bool = True) -> MessageInfo:
    return MessageInfo(id=5, received_at=0.0, listener="l", peer="p", sender="A|B",
                       control_id="C5", message_type="ADT^A01", status="published",
                       conflict=False, attempts=1, last_error=None, published_at=1.0,
                       kafka_topic="fhir" if published else None,
                       kafka_partition=0 if published else None,
                       kafka_offset=41 if published else None, summary="{}", replays=0,
                       size=3, charset="utf-8", timezone="UTC")


class FakeConsole:
    def __init__(self, row: MessageInfo, now: MappingView) -> None:
        self.row, self.now = row, now

        async def body(row_id: int) -> StoredBody:
            return StoredBody(raw=b"MSH|", ack=b"")

        self.runtime = SimpleNamespace(spool=SimpleNamespace(body=body),
                                       settings=SimpleNamespace(kafka=KafkaSettings(
                                           bootstrap_servers="127.0.0.1:1", topic="fhir")))

    async def message(self, row_id: int) -> MessageInfo:
        return self.row

    def map_row(self, raw: bytes, listener: str, charset: str | None = None,
                timezone: str | None = None) -> tuple[str, str, MappingView]:
        return "MSH|", "utf-8", self.now


def mapped(gender: str | None) -> MappingView:
    if gender is None:
        return MappingView("p", "UTC", error="RequiredFieldMissing at PID-3: no identifier")
    bundle = json.loads(json.dumps(BUNDLE))
    bundle["entry"][0]["resource"]["gender"] = gender
    return MappingView("p", "UTC", bundle=bundle)


def record(data: bytes, content_type: str = "application/fhir+json") -> KafkaRecord:
    event = Event(id="ev-5", source="urn:t", type="hl7gw.fhir.adt.a01", subject=None,
                  time=None, key=None, data=data, content_type=content_type)
    return KafkaRecord("fhir", 0, 41, None, data, tuple(event.kafka_headers()))


async def run(monkeypatch: pytest.MonkeyPatch, row: MessageInfo, now: MappingView,
              found: KafkaRecord | Exception | None) -> diffview.DiffResult:
    async def fake_read(*args: Any, **kwargs: Any) -> KafkaRecord | None:
        assert args[1:] == ("fhir", 0, 41)
        if isinstance(found, Exception):
            raise found
        return found

    monkeypatch.setattr(diffview, "read_record", fake_read)
    return await diffview.diff_row(FakeConsole(row, now), 5)  # type: ignore[arg-type]


async def test_changed_element(monkeypatch: pytest.MonkeyPatch) -> None:
    result = await run(monkeypatch, info(), mapped("female"),
                       record(json.dumps(BUNDLE).encode()))
    assert result.state == "ok" and result.event_id == "ev-5"
    assert [(c.path, c.before, c.after) for c in result.changes] == [
        ("Patient/p1.gender", "male", "female")]
    assert result.as_json()["published_at"] == "fhir/0@41"


async def test_never_published_is_said_and_the_mapping_now_still_shown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = await run(monkeypatch, info(published=False), mapped("male"),
                       AssertionError("Kafka must not be asked"))
    assert result.state == "unpublished" and "never published" in result.message
    assert result.after is not None and result.before is None


async def test_gone_down_raw_and_unmappable(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = await run(monkeypatch, info(), mapped("male"), None)
    assert gone.state == "gone" and "retention" in gone.message
    down = await run(monkeypatch, info(), mapped("male"), BrokerUnavailable("no answer"))
    assert down.state == "kafka-down" and down.message == "no answer"
    raw = await run(monkeypatch, info(), mapped("male"),
                    record(b"MSH|^~\\&|", "application/hl7-v2; charset=utf-8"))
    assert raw.state == "not-a-bundle"
    refused = await run(monkeypatch, info(), mapped(None), record(json.dumps(BUNDLE).encode()))
    assert refused.state == "unmappable" and "PID-3" in refused.message
    assert refused.before == BUNDLE and refused.changes == []


async def test_read_record_says_when_kafka_does_not_answer() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", topic="fhir",
                              request_timeout_ms=1000)
        with pytest.raises(BrokerUnavailable, match=r"kafka\.bootstrap_servers"):
            await read_record(kafka, "fhir", 0, 0, deadline_s=3)
