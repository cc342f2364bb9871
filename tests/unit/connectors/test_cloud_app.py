"""The function app over ASGI: binary and structured CloudEvents, dedupe, and errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from connectors.cloud import MemoryStore, create_app
from connectors.errors import EventRejected
from connectors.events import Event
from connectors.settings import FunctionSettings

BUNDLE = {"resourceType": "Bundle", "type": "transaction", "entry": [
    {"resource": {"resourceType": "Patient", "id": "p1"}},
    {"resource": {"resourceType": "Encounter", "id": "e1"}}]}


def event(event_id: str = "evt-1", **changes: Any) -> Event:
    fields: dict[str, Any] = {"id": event_id, "source": "urn:hl7gw:test",
                              "type": "org.hl7gw.adt.a01", "subject": "Patient/p1",
                              "time": "2024-05-01T10:00:00Z", "key": b"p1",
                              "data": orjson.dumps(BUNDLE)}
    fields.update(changes)
    return Event(**fields)


async def client_for(processor: Any = None, **settings: Any) -> httpx.AsyncClient:
    app = create_app(processor, settings=FunctionSettings(**settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fn")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for() as c:
        yield c


async def post(client: httpx.AsyncClient, e: Event) -> httpx.Response:
    return await client.post("/events", content=e.data, headers=e.http_headers())


async def test_binary_mode_is_accepted_then_readable(client: httpx.AsyncClient) -> None:
    response = await post(client, event())
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "id": "evt-1"}
    listed = (await client.get("/events")).json()
    assert listed == [{"id": "evt-1", "type": "org.hl7gw.adt.a01", "source": "urn:hl7gw:test",
                       "subject": "Patient/p1", "time": "2024-05-01T10:00:00Z",
                       "resource_types": ["Patient", "Encounter"], "bundle": BUNDLE}]
    assert (await client.get("/events/evt-1")).json()["bundle"] == BUNDLE


async def test_repeat_id_is_a_duplicate(client: httpx.AsyncClient) -> None:
    assert (await post(client, event())).status_code == 202
    again = await post(client, event())
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "id": "evt-1"}
    assert len((await client.get("/events")).json()) == 1


async def test_structured_mode(client: httpx.AsyncClient) -> None:
    e = event("evt-s")
    response = await client.post("/events", content=e.to_structured(),
                                 headers={"content-type": "application/cloudevents+json"})
    assert response.status_code == 202
    stored = (await client.get("/events/evt-s")).json()
    assert stored["resource_types"] == ["Patient", "Encounter"]
    assert stored["subject"] == "Patient/p1"


@pytest.mark.parametrize(("drop", "detail"), [
    ("ce-id", "header ce-id is required"),
    ("ce-specversion", "header ce-specversion is required"),
])
async def test_missing_required_header_is_400(client: httpx.AsyncClient, drop: str,
                                              detail: str) -> None:
    headers = {k: v for k, v in event().http_headers().items() if k != drop}
    response = await client.post("/events", content=orjson.dumps(BUNDLE), headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_event", "detail": f"CloudEvent {detail}"}


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'{"no": "resourceType"}'])
async def test_body_must_be_a_json_resource(client: httpx.AsyncClient, body: bytes) -> None:
    response = await post(client, event(data=body))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_event"


async def test_structured_garbage_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/events", content=b"{",
                                 headers={"content-type": "application/cloudevents+json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


async def test_non_json_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await post(client, event(content_type="text/plain", data=b"MSH|^~\\&|"))
    assert response.status_code == 415
    batch = await client.post("/events", content=b"[]",
                              headers={"content-type": "application/cloudevents-batch+json"})
    assert batch.status_code == 415


async def test_body_limit_is_413() -> None:
    async with await client_for(max_body_bytes=64) as small:
        response = await post(small, event())
    assert response.status_code == 413


async def test_healthz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_unknown_event_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/events/nope")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


class Flaky:
    """A processor that fails as told, then records."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.seen: list[str] = []

    async def process(self, e: Event, bundle: dict[str, Any]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.seen.append(e.id)


async def test_processor_failure_is_500_and_not_remembered() -> None:
    processor = Flaky(RuntimeError("db down, Patient Jane Doe"))
    async with await client_for(processor) as c:
        failed = await post(c, event())
        assert failed.status_code == 500
        assert "Jane" not in failed.text
        assert (await post(c, event())).status_code == 202
        assert (await c.get("/events")).status_code == 404  # this processor keeps nothing
    assert processor.seen == ["evt-1"]


async def test_rejected_event_is_422() -> None:
    async with await client_for(Flaky(EventRejected("unknown facility"))) as c:
        response = await post(c, event())
    assert response.status_code == 422
    assert response.json() == {"error": "rejected", "detail": "unknown facility"}


class Blocking:
    """A processor that holds the first event until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def process(self, e: Event, bundle: dict[str, Any]) -> None:
        self.entered.set()
        await self.release.wait()


async def test_concurrent_same_id_is_409() -> None:
    processor = Blocking()
    async with await client_for(processor) as c:
        first = asyncio.create_task(post(c, event()))
        await asyncio.wait_for(processor.entered.wait(), 5)
        second = await post(c, event())
        processor.release.set()
        assert (await asyncio.wait_for(first, 5)).status_code == 202
    assert second.status_code == 409
    assert second.headers["retry-after"] == "1"


async def test_memory_store_is_bounded() -> None:
    store = MemoryStore(capacity=2)
    for n in range(3):
        await store.process(event(f"e{n}"), BUNDLE)
    assert [e["id"] for e in store.list_events()] == ["e1", "e2"]
