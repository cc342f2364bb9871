"""The function's /healthz, /readyz and /metrics over ASGI, and what its metrics count."""

from __future__ import annotations

import base64

import httpx
import orjson
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from connectors.cloud import create_app
from connectors.cloud.lambda_handler import handle_kafka_batch
from connectors.cloud.metrics import RESULTS
from connectors.errors import EventRejected
from connectors.events import Event

BUNDLE = orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": []})


def _event(event_id: str) -> Event:
    return Event(id=event_id, source="urn:hl7gw:test", type="hl7gw.fhir.adt.a01",
                 subject=None, time=None, key=b"p1", data=BUNDLE)


def _samples(text: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, sample.labels.get("result", ""))] = sample.value
    return found


async def test_probes_answer_and_metrics_count_each_result() -> None:
    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://fn") as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        event = _event("evt-1")
        for _ in range(2):  # accepted, then a duplicate
            await client.post("/events", content=event.data, headers=event.http_headers())
        await client.post("/events", content=b"{}", headers={"content-type": "text/plain"})
        text = (await client.get("/metrics")).text
    samples = _samples(text)
    assert samples[("hl7gw_function_events_total", "accepted")] == 1
    assert samples[("hl7gw_function_events_total", "duplicate")] == 1
    assert samples[("hl7gw_function_events_total", "invalid_event")] == 1
    assert {r for (name, r) in samples if name == "hl7gw_function_events_total"} == set(RESULTS)
    assert samples[("hl7gw_function_event_seconds_count", "")] == 3


async def test_two_apps_in_one_process_keep_their_own_counts() -> None:
    first, second = create_app(), create_app()
    event = _event("evt-2")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first),
                                 base_url="http://fn") as client:
        await client.post("/events", content=event.data, headers=event.http_headers())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second),
                                 base_url="http://fn") as client:
        text = (await client.get("/metrics")).text
    assert _samples(text)[("hl7gw_function_events_total", "accepted")] == 0


class _Refusing:
    async def process(self, event: Event, bundle: object) -> None:
        raise EventRejected("no")


async def test_kafka_batches_are_counted_too() -> None:
    app = create_app(_Refusing())
    record = {"topic": "t", "partition": 0, "offset": 7, "key": None,
              "value": base64.b64encode(BUNDLE).decode(),
              "headers": [{name: list(value)} for name, value in _event("e3").kafka_headers()]}
    answer = await handle_kafka_batch({"eventSource": "aws:kafka", "records": {"t-0": [record]}},
                                      app.state.intake, app.state.metrics)
    assert len(answer["batchItemFailures"]) == 1
    text = generate_latest(app.state.metrics.registry).decode()
    assert _samples(text)[("hl7gw_function_events_total", "rejected")] == 1
