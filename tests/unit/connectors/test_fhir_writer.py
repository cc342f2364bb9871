"""The FHIR server writer over httpx's MockTransport; the real server is in integration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from connectors.cloud import FhirServerError, FhirServerWriter
from connectors.errors import EventRejected
from connectors.events import Event
from connectors.settings import FhirWriterSettings

BUNDLE = {"resourceType": "Bundle", "type": "transaction", "entry": [
    {"resource": {"resourceType": "Patient", "id": "p1"},
     "request": {"method": "PUT", "url": "Patient/p1"}}]}
EVENT = Event(id="evt-1", source="urn:s", type="t", subject="Patient/p1", time=None, key=b"p1",
              data=orjson.dumps(BUNDLE))


def writer(answers: list[int | Exception], seen: list[httpx.Request]) -> FhirServerWriter:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={"resourceType": "OperationOutcome"})

    settings = FhirWriterSettings(base_url="https://fhir.example/r4/", max_attempts=3,
                                  backoff_initial_s=0.001, backoff_max_s=0.002)
    return FhirServerWriter(settings,
                            client=httpx.AsyncClient(transport=httpx.MockTransport(handle)))


async def use(w: FhirServerWriter, call: Callable[[], Any]) -> None:
    try:
        await call()
    finally:
        await w.aclose()


async def test_posts_the_bundle_to_the_base_url() -> None:
    seen: list[httpx.Request] = []
    w = writer([200], seen)
    await use(w, lambda: w.process(EVENT, BUNDLE))
    [request] = seen
    assert (request.method, str(request.url)) == ("POST", "https://fhir.example/r4/")
    assert request.headers["content-type"] == "application/fhir+json"
    assert orjson.loads(request.content) == BUNDLE


@pytest.mark.parametrize("first", [503, 429, 500, httpx.ConnectError("refused")])
async def test_retries_transient_failures(first: int | Exception) -> None:
    seen: list[httpx.Request] = []
    w = writer([first, first, 200], seen)
    await use(w, lambda: w.process(EVENT, BUNDLE))
    assert len(seen) == 3


async def test_gives_up_with_a_retriable_error() -> None:
    seen: list[httpx.Request] = []
    w = writer([503, 503, 503], seen)
    with pytest.raises(FhirServerError, match="HTTP 503") as caught:
        await use(w, lambda: w.process(EVENT, BUNDLE))
    assert caught.value.retriable and caught.value.status == 503 and len(seen) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_4xx_is_rejected_at_once(status: int) -> None:
    seen: list[httpx.Request] = []
    w = writer([status], seen)
    with pytest.raises(EventRejected, match=f"HTTP {status}"):
        await use(w, lambda: w.process(EVENT, BUNDLE))
    assert len(seen) == 1


async def test_a_resource_that_is_not_a_transaction_is_rejected() -> None:
    seen: list[httpx.Request] = []
    w = writer([200], seen)
    with pytest.raises(EventRejected):
        await use(w, lambda: w.process(EVENT, {"resourceType": "Patient", "id": "p1"}))
    assert seen == []
