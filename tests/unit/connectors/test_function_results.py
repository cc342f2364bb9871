"""Results flowing back: the function app's 201 answer, its repeat, and the result event."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

from connectors.bridge.delivery import HttpTarget
from connectors.bridge.metrics import metrics_for
from connectors.cloud import create_app
from connectors.errors import InvalidEvent
from connectors.events import FHIR_JSON, Event
from connectors.results import CAUSATION_ID, fhir_answer, result_event
from connectors.settings import BridgeSettings, FunctionSettings

BUNDLE = {"resourceType": "Bundle", "type": "transaction", "entry": [
    {"resource": {"resourceType": "Patient", "id": "p1"}}]}
RESULT = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"resource": {"resourceType": "RiskAssessment", "id": "r1", "status": "final",
                  "subject": {"reference": "Patient/p1"}}}]}


def event(event_id: str = "evt-1") -> Event:
    return Event(id=event_id, source="urn:hl7gw:test", type="hl7gw.fhir.oru.r01",
                 subject="Patient/p1", time="2024-05-01T10:00:00Z", key=b"p1",
                 data=orjson.dumps(BUNDLE))


class Answers:
    """A processor answering each event with a result (counting its calls)."""

    def __init__(self, result: Any = RESULT) -> None:
        self.result = result
        self.calls = 0

    async def process(self, event: Event, bundle: dict[str, Any]) -> Any:
        self.calls += 1
        return self.result


async def post(processor: Any, *events: Event) -> list[httpx.Response]:
    app = create_app(processor, settings=FunctionSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://fn") as client:
        return [await client.post("/events", content=e.data, headers=e.http_headers())
                for e in events]


async def test_a_result_is_answered_201_as_fhir_json() -> None:
    [response] = await post(Answers(), event())
    assert response.status_code == 201
    assert response.headers["content-type"] == FHIR_JSON
    assert response.json() == RESULT


async def test_a_repeated_event_gets_the_same_result_without_processing_again() -> None:
    processor = Answers()
    first, again = await post(processor, event(), event())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() == RESULT
    assert processor.calls == 1


async def test_no_result_keeps_the_202_answer() -> None:
    [response] = await post(Answers(None), event())
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "id": "evt-1"}


async def test_a_result_that_is_not_a_fhir_resource_is_a_processor_failure() -> None:
    processor = Answers({"score": 5})
    first, again = await post(processor, event(), event())
    assert first.status_code == 500  # retried by the bridge, not published
    assert again.status_code == 500 and processor.calls == 2  # not remembered as done


def test_the_result_event_is_deterministic_and_names_its_cause() -> None:
    cause = event("evt-9")
    one = result_event(cause, RESULT)
    two = result_event(cause, orjson.dumps(RESULT))
    assert one.id == two.id == "evt-9.result"
    assert one.extensions == {CAUSATION_ID: "evt-9"}
    assert (one.key, one.subject, one.source) == (b"p1", "Patient/p1", "urn:hl7gw:test")
    assert one.type == "hl7gw.result.bundle" and one.content_type == FHIR_JSON
    assert orjson.loads(one.data) == RESULT
    assert ("ce_causationid", b"evt-9") in one.kafka_headers()
    with pytest.raises(InvalidEvent):
        result_event(cause, b'{"score": 5}')


@pytest.mark.parametrize(("content_type", "body", "is_result"), [
    ("application/fhir+json", orjson.dumps(RESULT), True),
    ("application/json; charset=utf-8", orjson.dumps(RESULT), True),
    ("application/json", b'{"status": "accepted", "id": "e"}', False),
    ("text/plain", orjson.dumps(RESULT), False),
    ("application/fhir+json", b"not json", False),
    ("application/fhir+json", b"", False),
])
def test_only_a_json_fhir_resource_answer_is_a_result(content_type: str, body: bytes,
                                                      is_result: bool) -> None:
    assert (fhir_answer(content_type, body) is not None) is is_result


@pytest.mark.parametrize(("status", "body", "kept"), [
    (201, orjson.dumps(RESULT), True),
    (200, orjson.dumps(RESULT), True),
    (202, orjson.dumps(RESULT), False),  # 202 is "accepted, nothing for you"
    (200, b'{"status": "duplicate", "id": "evt-1"}', False),
])
async def test_the_bridge_keeps_a_200_or_201_fhir_answer(status: int, body: bytes,
                                                          kept: bool) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body,
                              headers={"content-type": "application/fhir+json"})

    async def sleep(delay: float) -> None:
        pass

    settings = BridgeSettings(target_url="http://fn.test/events")
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        target = HttpTarget(client, settings, metrics=metrics_for(CollectorRegistry()),
                            sleep=sleep)
        result = await target.deliver(event())
    assert result.delivered
    assert (result.result == body) if kept else (result.result is None)


def kafka_batch(*events: Event) -> dict[str, Any]:
    import base64

    def record(offset: int, e: Event) -> dict[str, Any]:
        return {"topic": "hl7.fhir", "partition": 0, "offset": offset,
                "key": base64.b64encode(e.key or b"").decode(),
                "value": base64.b64encode(e.data).decode(),
                "headers": [{name: list(value)} for name, value in e.kafka_headers()]}

    return {"eventSource": "aws:kafka", "records": {
        "hl7.fhir-0": [record(n, e) for n, e in enumerate(events)]}}


async def test_a_kafka_triggered_result_goes_to_the_sink_and_a_failed_publish_is_retried(
        ) -> None:
    from connectors.cloud.intake import Intake
    from connectors.cloud.lambda_handler import handle_kafka_batch
    from connectors.errors import PublishError

    published: list[tuple[str, Any]] = []
    failures = [PublishError("broker away", retriable=True)]

    async def sink(cause: Event, resource: dict[str, Any]) -> None:
        if failures:
            raise failures.pop()
        published.append((cause.id, resource))

    processor = Answers()
    intake = Intake(processor)
    batch = kafka_batch(event("evt-1"))
    first = await handle_kafka_batch(batch, intake, results=sink)
    assert first["batchItemFailures"] == [
        {"itemIdentifier": {"topic-partition": "hl7.fhir-0", "offset": 0}}]
    again = await handle_kafka_batch(batch, intake, results=sink)
    assert again == {"batchItemFailures": []}
    assert published == [("evt-1", RESULT)]
    assert processor.calls == 1  # the retry publishes the remembered result
