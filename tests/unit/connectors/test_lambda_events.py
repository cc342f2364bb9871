"""The Lambda handler fed with event files in the shapes AWS sends (tests/.../events/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.cloud import MemoryStore

EVENTS = Path(__file__).parent / "events"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return data


class Context:
    """The parts of a Lambda context object the handler may touch."""

    function_name = "hl7gw-function"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    def get_remaining_time_in_millis(self) -> int:
        return 30000


@pytest.mark.parametrize(("name", "event_id"), [
    ("apigw_rest_v1.json", "evt-rest-v1"),
    ("apigw_http_v2.json", "evt-http-v2"),
    ("function_url.json", "evt-fn-url"),
    ("alb.json", "evt-alb"),
])
def test_http_events(handler: Any, store: MemoryStore, name: str, event_id: str) -> None:
    event = load(name)
    response = handler(event, Context())
    assert response["statusCode"] == 202, response
    assert json.loads(response["body"]) == {"status": "accepted", "id": event_id}
    [kept] = store.list_events()
    assert (kept["id"], kept["subject"], kept["resource_types"]) == (
        event_id, "Patient/pat-7f3a", ["Patient"])
    assert handler(event, Context())["statusCode"] == 200  # a repeat is a duplicate


def test_msk_event_with_signed_header_bytes(handler: Any, store: MemoryStore) -> None:
    event = load("msk.json")
    subjects = [h["ce_subject"] for r in event["records"]["hl7.fhir-0"] for h in r["headers"]
                if "ce_subject" in h]
    assert any(b < 0 for b in subjects[1])  # the file really carries signed bytes
    assert handler(event, Context()) == {"batchItemFailures": []}
    kept = store.list_events()
    assert [(e["id"], e["subject"]) for e in kept] == [
        ("msk-a1", "Patient/pat-7f3a"), ("msk-a2", "Patient/pat-ü"),
        ("msk-b1", "Patient/pat-99c1")]


def test_self_managed_kafka_event(handler: Any, store: MemoryStore) -> None:
    assert handler(load("self_managed_kafka.json"), Context()) == {"batchItemFailures": []}
    assert [e["id"] for e in store.list_events()] == ["smk-c1", "smk-c2"]


def test_partial_batch_failure(handler: Any, store: MemoryStore) -> None:
    response = handler(load("msk_partial_failure.json"), Context())
    assert response == {"batchItemFailures": [
        {"itemIdentifier": {"topic-partition": "hl7.fhir-0", "offset": 21}},
        {"itemIdentifier": {"topic-partition": "hl7.fhir-0", "offset": 22}},
        {"itemIdentifier": {"topic-partition": "hl7.fhir-1", "offset": 9}},
        {"itemIdentifier": {"topic-partition": "hl7.fhir-1", "offset": 10}},
    ]}
    assert [e["id"] for e in store.list_events()] == ["pf-a1", "pf-c1"]
