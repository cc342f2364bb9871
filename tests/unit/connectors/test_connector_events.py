"""CloudEvents envelopes: Kafka binary, HTTP binary and HTTP structured, round-tripped."""

from __future__ import annotations

import base64
from datetime import datetime

import orjson
import pytest

from connectors.errors import InvalidEvent
from connectors.events import Event

BUNDLE = orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": []})


def sample(**changes: object) -> Event:
    fields: dict[str, object] = {
        "id": "5f0c6d3e-msg-0001", "source": "urn:hl7gw:lab-a", "type": "org.hl7gw.adt.a01",
        "subject": "Patient/7c1f9a2e", "time": "2024-05-01T10:20:30.123Z",
        "key": b"7c1f9a2e", "data": BUNDLE, "extensions": {"msgtype": "ADT^A01"},
    }
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def test_kafka_headers_are_binary_mode() -> None:
    headers = dict(sample().kafka_headers())
    assert headers == {
        "ce_specversion": b"1.0", "ce_id": b"5f0c6d3e-msg-0001",
        "ce_source": b"urn:hl7gw:lab-a", "ce_type": b"org.hl7gw.adt.a01",
        "ce_time": b"2024-05-01T10:20:30.123Z", "ce_subject": b"Patient/7c1f9a2e",
        "ce_partitionkey": b"7c1f9a2e", "ce_msgtype": b"ADT^A01",
        "content-type": b"application/fhir+json",
    }


@pytest.mark.parametrize("event", [
    sample(),
    sample(subject=None, time=None, key=None, extensions={}),
    sample(subject="Patient/ä ö %20 \"q\""),
    sample(key=b"\xff\xfe", content_type="application/json"),
], ids=["full", "minimal", "non-ascii-subject", "binary-key"])
def test_kafka_round_trip(event: Event) -> None:
    assert Event.from_kafka(event.key, event.data, event.kafka_headers()) == event


@pytest.mark.parametrize("event", [
    sample(),
    sample(subject=None, time=None, key=None, extensions={}),
    sample(subject="Patient/ä ö %20 \"q\""),
], ids=["full", "minimal", "non-ascii-subject"])
def test_http_round_trip(event: Event) -> None:
    headers = event.http_headers()
    assert all(value.isascii() and " " not in value for value in headers.values())
    assert Event.from_http(headers, event.data) == event


def test_http_headers_names_and_percent_encoding() -> None:
    headers = sample(subject="Patient/ä b").http_headers()
    assert headers["ce-id"] == "5f0c6d3e-msg-0001"
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-subject"] == "Patient/%C3%A4%20b"
    assert headers["content-type"] == "application/fhir+json"


def test_http_header_names_are_case_insensitive() -> None:
    headers = {name.upper(): value for name, value in sample().http_headers().items()}
    assert Event.from_http(headers, BUNDLE) == sample()


def test_binary_key_has_no_partitionkey_header() -> None:
    names = [name for name, _ in sample(key=b"\xff").kafka_headers()]
    assert "ce_partitionkey" not in names


@pytest.mark.parametrize("event", [
    sample(),
    sample(content_type="application/octet-stream", data=b"\x00\x01binary"),
], ids=["json", "base64"])
def test_structured_round_trip(event: Event) -> None:
    assert Event.from_structured(event.to_structured()) == event


def test_structured_document_shape() -> None:
    doc = orjson.loads(sample().to_structured())
    assert doc["specversion"] == "1.0"
    assert doc["datacontenttype"] == "application/fhir+json"
    assert doc["data"] == {"resourceType": "Bundle", "type": "transaction", "entry": []}
    raw = orjson.loads(sample(content_type="text/plain", data=b"hi").to_structured())
    assert base64.b64decode(raw["data_base64"]) == b"hi"


@pytest.mark.parametrize(("drop", "message"), [
    ("ce_id", "header ce_id is required"),
    ("ce_specversion", "header ce_specversion is required"),
    ("ce_source", "header ce_source is required"),
    ("ce_type", "header ce_type is required"),
])
def test_from_kafka_names_the_missing_header(drop: str, message: str) -> None:
    headers = [(n, v) for n, v in sample().kafka_headers() if n != drop]
    with pytest.raises(InvalidEvent, match=message):
        Event.from_kafka(b"k", BUNDLE, headers)


def test_from_http_names_the_missing_header() -> None:
    headers = {k: v for k, v in sample().http_headers().items() if k != "ce-id"}
    with pytest.raises(InvalidEvent, match="header ce-id is required"):
        Event.from_http(headers, BUNDLE)


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"specversion": "1.0", "source": "s", "type": "t"}', "attribute 'id' is required"),
    (b'{"specversion": "0.3", "id": "1", "source": "s", "type": "t"}', "specversion"),
    (b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data_base64": "!!"}',
     "not base64"),
])
def test_from_structured_rejects(body: bytes, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        Event.from_structured(body)


def test_unsupported_specversion() -> None:
    headers = [(n, b"0.3" if n == "ce_specversion" else v) for n, v in sample().kafka_headers()]
    with pytest.raises(InvalidEvent, match=r"unsupported CloudEvents specversion .0\.3."):
        Event.from_kafka(None, BUNDLE, headers)


def test_tombstone_is_not_an_event() -> None:
    with pytest.raises(InvalidEvent, match="tombstone"):
        Event.from_kafka(b"k", None, sample().kafka_headers())


@pytest.mark.parametrize("bad", ["yesterday", "2024-05-01", "2024-05-01T10:20:30"])
def test_time_must_be_rfc3339(bad: str) -> None:
    with pytest.raises(InvalidEvent, match="time"):
        sample(time=bad)


@pytest.mark.parametrize("name", ["Upper", "with-dash", "id", "a" * 21])
def test_extension_names_are_checked(name: str) -> None:
    with pytest.raises(InvalidEvent, match="extension"):
        sample(extensions={name: "x"})


def test_new_stamps_id_and_time() -> None:
    event = Event.new(source="urn:s", type="t", data=b"{}", key=b"k")
    assert len(event.id) == 36
    assert event.time is not None and event.time.endswith("Z")
    assert datetime.fromisoformat(event.time).tzinfo is not None
    assert Event.new(source="urn:s", type="t", data=b"{}", id="stable").id == "stable"
