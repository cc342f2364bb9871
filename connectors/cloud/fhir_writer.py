"""Processor that writes each transaction Bundle to a FHIR server (``POST [base]``).

Retries with tenacity on 5xx, 429 and transport errors (jittered exponential backoff,
bounded attempts); when they run out the error is retriable, so the function answers 500
and the bridge or Lambda tries the event again later. Any other 4xx means the server will
never take this Bundle: :class:`EventRejected` (422, dead-lettered upstream). The server's
response body is never repeated in an error, since it may echo PHI.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from connectors.errors import ConnectorError, EventRejected
from connectors.events import FHIR_JSON, Event
from connectors.settings import FhirWriterSettings


class FhirServerError(ConnectorError):
    """The FHIR server did not take a Bundle; ``retriable`` says whether trying again helps."""

    def __init__(self, message: str, *, status: int | None, retriable: bool) -> None:
        super().__init__(message, retriable=retriable)
        self.status = status


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, FhirServerError) and exc.retriable


class FhirServerWriter:
    """POSTs each event's transaction Bundle to ``settings.base_url``."""

    def __init__(self, settings: FhirWriterSettings, *,
                 client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(timeout=settings.timeout_s)
        self.attempts = 0

    async def process(self, event: Event, bundle: dict[str, Any]) -> None:
        """Write ``bundle``; raises :class:`EventRejected` or :class:`FhirServerError`."""
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") not in (
                "transaction", "batch"):
            raise EventRejected("the FHIR server writer takes transaction or batch Bundles")
        s = self._settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(s.max_attempts),
            wait=wait_random_exponential(multiplier=s.backoff_initial_s, max=s.backoff_max_s),
            retry=retry_if_exception(_worth_retrying),
            reraise=True,
        )
        body = orjson.dumps(bundle)
        async for attempt in retrying:
            with attempt:
                await self._post(event, body)

    async def _post(self, event: Event, body: bytes) -> None:
        self.attempts += 1
        headers = {"content-type": FHIR_JSON, "accept": FHIR_JSON,
                   "x-request-id": event.id}
        try:
            response = await self._client.post(self._settings.base_url + "/", content=body,
                                               headers=headers)
        except httpx.TransportError as exc:
            raise FhirServerError(f"FHIR server unreachable: {type(exc).__name__}",
                                  status=None, retriable=True) from exc
        status = response.status_code
        if 200 <= status <= 299:
            return
        if status == 429 or status >= 500:
            raise FhirServerError(f"FHIR server answered HTTP {status}", status=status,
                                  retriable=True)
        raise EventRejected(f"FHIR server refused the Bundle for event {event.id}: "
                            f"HTTP {status}")

    async def aclose(self) -> None:
        """Close the HTTP client (the app's lifespan calls this)."""
        await self._client.aclose()
