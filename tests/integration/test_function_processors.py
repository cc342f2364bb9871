"""The shipped processors against real HTTP servers: a FHIR server and an alert sink."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connectors.cloud import FhirServerWriter, HttpAlertSink, VitalSignAlerts, create_app
from connectors.cloud.alerts import ALERT_TYPE
from connectors.events import Event
from connectors.settings import FhirWriterSettings
from tests.integration.conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration


class Recorder:
    """A small HTTP server app that records what it got; fails the first ``failures``."""

    def __init__(self, failures: int = 0, status: int = 503) -> None:
        self.failures, self.status = failures, status
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.app = FastAPI()
        self.app.post("/{path:path}")(self.receive)

    async def receive(self, request: Request) -> JSONResponse:
        self.requests.append((request.url.path, dict(request.headers), await request.body()))
        if len(self.requests) <= self.failures:
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=self.status)
        return JSONResponse({"resourceType": "Bundle", "type": "transaction-response"})


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, RunningServer]]:
    rec = Recorder(failures=1)
    running = await start_server(rec.app)
    yield rec, running
    await stop_server(running)


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
         "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources]}


def event_for(data: dict[str, Any], event_id: str) -> Event:
    return Event(id=event_id, source="urn:hl7gw:test", type="hl7gw.fhir.oru.r01",
                 subject="Patient/pat-1", time="2024-05-01T10:00:00Z", key=b"pat-1",
                 data=orjson.dumps(data))


async def post_to_function(app: FastAPI, e: Event) -> httpx.Response:
    function = await start_server(app)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(f"{function.url}/events", content=e.data,
                                     headers=e.http_headers())
    finally:
        await stop_server(function)


async def test_fhir_writer_retries_a_503_then_writes_the_bundle(
        recorder: tuple[Recorder, RunningServer]) -> None:
    rec, server = recorder
    writer = FhirServerWriter(FhirWriterSettings(base_url=f"{server.url}/fhir/r4",
                                                 backoff_initial_s=0.01, backoff_max_s=0.05))
    data = bundle({"resourceType": "Patient", "id": "pat-1"})
    try:
        response = await post_to_function(create_app(writer), event_for(data, "evt-w1"))
    finally:
        await writer.aclose()
    assert response.status_code == 202
    assert [path for path, _, _ in rec.requests] == ["/fhir/r4/", "/fhir/r4/"]
    _, headers, body = rec.requests[-1]
    assert headers["content-type"] == "application/fhir+json"
    assert orjson.loads(body) == data
    assert writer.attempts == 2


async def test_alert_processor_posts_to_a_real_sink(
        recorder: tuple[Recorder, RunningServer]) -> None:
    rec, server = recorder
    rec.failures = 0
    sink = HttpAlertSink(f"{server.url}/alerts")
    hr = {"resourceType": "Observation", "id": "obs-hr", "status": "final",
          "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
          "subject": {"reference": "Patient/pat-1"},
          "valueQuantity": {"value": 151, "unit": "/min", "system": "http://unitsofmeasure.org",
                            "code": "/min"}}
    processor = VitalSignAlerts(sink)
    try:
        response = await post_to_function(create_app(processor),
                                          event_for(bundle(hr), "evt-a1"))
    finally:
        await processor.aclose()
    assert response.status_code == 202
    [(path, headers, body)] = rec.requests
    assert path == "/alerts" and headers["ce-type"] == ALERT_TYPE
    assert headers["ce-subject"] == "Patient/pat-1"
    assert orjson.loads(body)["observation"] == "obs-hr"
