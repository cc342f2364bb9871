"""The function's HTTP face: ``POST /events`` in CloudEvents binary or structured mode.

Responses to ``POST /events``:

- ``202 {"status": "accepted", "id": ...}``: first time; the processor has finished with
  the event before the answer is sent, so a 202 is safe to commit on.
- ``201`` with a FHIR resource (``application/fhir+json``): as 202, and the processor
  answered with a result for the EHR; the bridge publishes it to the outbound topic
  (``connectors.results``).
- ``200 {"status": "duplicate", "id": ...}``: this id was processed before; nothing done.
  If it had a result, the answer is ``200`` with that same FHIR resource, so a bridge
  that crashed before publishing it publishes it on the resend.
- ``409 {"error": "in_progress"}`` with ``Retry-After``: the same id is being processed by
  a concurrent request; the bridge retries 409.
- ``400`` (not a CloudEvent, missing ``ce-id``/``ce-specversion``, body not a JSON
  resource), ``413`` (too large), ``415`` (not JSON, or batched mode), ``422`` (the
  processor refused the event for good), ``500`` (the processor failed; retry).

Error bodies are ``{"error": code, "detail": text}``; the text never repeats the body.

Also ``GET /healthz`` (the process answers), ``GET /readyz`` (200 while the app serves
and is not shutting down) and ``GET /metrics`` (``hl7gw_function_*``, one registry per
app: connectors/cloud/metrics.py). While tracing is on (``connectors.tracing``) each
``POST /events`` is a span continuing the W3C ``traceparent`` header (the bridge's), else
the event's ``ce-traceparent`` extension.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry

from connectors import tracing
from connectors.cloud.intake import Intake, Status, Taken, UnsupportedMediaType
from connectors.cloud.metrics import FunctionMetrics
from connectors.cloud.processor import EventReader, MemoryStore, Processor
from connectors.errors import EventRejected, InvalidEvent
from connectors.events import FHIR_JSON, HTTP_PREFIX, STRUCTURED_JSON, Event
from connectors.probes import add_probe_routes
from connectors.settings import FunctionSettings

log = logging.getLogger(__name__)

BATCH_JSON = "application/cloudevents-batch+json"


def create_app(processor: Processor | None = None, *,
               settings: FunctionSettings | None = None,
               registry: CollectorRegistry | None = None) -> FastAPI:
    """The function app; ``processor`` defaults to a :class:`MemoryStore` sample."""
    settings = settings or FunctionSettings()
    processor = processor or MemoryStore(settings.max_events)
    intake = Intake(processor, dedupe_capacity=settings.dedupe_capacity)
    metrics = FunctionMetrics(registry)
    closing: list[bool] = []  # set once the app shuts down: no longer ready

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        closing.append(True)
        close = getattr(processor, "aclose", None)
        if close is not None:
            await close()

    app = FastAPI(title="hl7gw function", version="0.1.0", lifespan=lifespan)
    app.state.intake = intake
    app.state.settings = settings
    app.state.metrics = metrics

    async def readiness() -> tuple[bool, dict[str, Any]]:
        # The processor's downstream (a FHIR server, an alert sink) is not called here:
        # while it is down, events are answered 500 and the bridge retries them.
        return not closing, {"processor": type(processor).__name__,
                             "shutting_down": bool(closing)}

    add_probe_routes(app, readiness, metrics.registry)

    @app.post("/events")
    async def post_event(request: Request) -> Response:
        started = time.perf_counter()
        with tracing.span("hl7gw.function.event", kind="server",
                          parent=_trace_parent(request.headers),
                          attributes={"http.request.method": "POST", "url.path": "/events",
                                      "hl7gw.processor": type(processor).__name__}) as current:
            response, result, event = await _post_event(request, intake,
                                                        settings.max_body_bytes)
            tracing.set_attributes(current, {
                "hl7gw.outcome": result, "http.response.status_code": response.status_code,
                "cloudevents.event_id": event.id if event else None,
                "cloudevents.event_type": event.type if event else None})
            if response.status_code >= 500:
                tracing.fail(current, result)
        metrics.observe(result, time.perf_counter() - started)
        return response

    @app.get("/events")
    async def list_events() -> JSONResponse:
        reader = _reader(processor)
        if reader is None:
            return _error(404, "not_available", "this processor does not keep events")
        return JSONResponse(reader.list_events())

    @app.get("/events/{event_id}")
    async def get_event(event_id: str) -> JSONResponse:
        reader = _reader(processor)
        if reader is None:
            return _error(404, "not_available", "this processor does not keep events")
        found = reader.get_event(event_id)
        if found is None:
            return _error(404, "not_found", "no event with this id")
        return JSONResponse(found)

    return app


def _trace_parent(headers: Mapping[str, str]) -> str | None:
    """The W3C ``traceparent`` of the caller (the bridge's span), else the event's own."""
    return headers.get(tracing.TRACEPARENT) or headers.get(HTTP_PREFIX + tracing.TRACEPARENT)


Answered = tuple[Response, str, Event | None]  # the response, its result code, the event


async def _post_event(request: Request, intake: Intake, limit: int) -> Answered:
    declared = request.headers.get("content-length", "")
    # ASCII digits only ("²".isdigit() is True, int("²") fails); 19+ digits is too large
    if declared.isascii() and declared.isdigit() and (len(declared) > 18
                                                      or int(declared) > limit):
        return _error(413, "payload_too_large", f"body exceeds {limit} bytes"), \
            "payload_too_large", None
    body = await request.body()
    if len(body) > limit:
        return _error(413, "payload_too_large", f"body exceeds {limit} bytes"), \
            "payload_too_large", None
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    event: Event | None = None
    try:
        if media == BATCH_JSON:
            raise UnsupportedMediaType("batched CloudEvents are not accepted; send one event")
        if media == STRUCTURED_JSON:
            event = Event.from_structured(body)
        else:
            event = Event.from_http(request.headers, body)
        taken = await intake.take(event)
    except UnsupportedMediaType as exc:
        return _error(415, "unsupported_media_type", str(exc)), "unsupported_media_type", event
    except InvalidEvent as exc:
        return _error(400, "invalid_event", str(exc)), "invalid_event", event
    except EventRejected as exc:
        log.warning("event rejected by processor", extra={"error": type(exc).__name__})
        return _error(422, "rejected", str(exc)), "rejected", event
    except Exception as exc:  # noqa: BLE001 - any processor failure is a retriable 500
        log.error("processor failed", extra={"error": type(exc).__name__})
        return _error(500, "processing_failed", "the processor failed; try again"), \
            "processing_failed", event
    return _answer(taken, event.id), taken.status.value, event


def _answer(taken: Taken, event_id: str) -> Response:
    status = taken.status
    if taken.result is not None and status is not Status.IN_PROGRESS:
        if status is Status.ACCEPTED:
            log.info("event accepted with a result", extra={"event_id": event_id})
        return Response(orjson.dumps(taken.result), media_type=FHIR_JSON,
                        status_code=201 if status is Status.ACCEPTED else 200)
    if status is Status.ACCEPTED:
        log.info("event accepted", extra={"event_id": event_id})
        return JSONResponse({"status": "accepted", "id": event_id}, status_code=202)
    if status is Status.DUPLICATE:
        return JSONResponse({"status": "duplicate", "id": event_id}, status_code=200)
    return JSONResponse({"error": "in_progress", "detail": "this event id is being processed",
                         "id": event_id}, status_code=409, headers={"retry-after": "1"})


def _reader(processor: Processor) -> EventReader | None:
    return processor if isinstance(processor, EventReader) else None


def _error(status: int, code: str, detail: str) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "detail": detail}
    return JSONResponse(body, status_code=status)
