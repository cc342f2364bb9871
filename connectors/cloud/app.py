"""The function's HTTP face: ``POST /events`` in CloudEvents binary or structured mode.

Responses to ``POST /events``:

- ``202 {"status": "accepted", "id": ...}``: first time; the processor has finished with
  the event before the answer is sent, so a 202 is safe to commit on.
- ``200 {"status": "duplicate", "id": ...}``: this id was processed before; nothing done.
- ``409 {"error": "in_progress"}`` with ``Retry-After``: the same id is being processed by
  a concurrent request; the bridge retries 409.
- ``400`` (not a CloudEvent, missing ``ce-id``/``ce-specversion``, body not a JSON
  resource), ``413`` (too large), ``415`` (not JSON, or batched mode), ``422`` (the
  processor refused the event for good), ``500`` (the processor failed; retry).

Error bodies are ``{"error": code, "detail": text}``; the text never repeats the body.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connectors.cloud.intake import Intake, Status, UnsupportedMediaType
from connectors.cloud.processor import EventReader, MemoryStore, Processor
from connectors.errors import EventRejected, InvalidEvent
from connectors.events import STRUCTURED_JSON, Event
from connectors.settings import FunctionSettings

log = logging.getLogger(__name__)

BATCH_JSON = "application/cloudevents-batch+json"


def create_app(processor: Processor | None = None, *,
               settings: FunctionSettings | None = None) -> FastAPI:
    """The function app; ``processor`` defaults to a :class:`MemoryStore` sample."""
    settings = settings or FunctionSettings()
    processor = processor or MemoryStore(settings.max_events)
    intake = Intake(processor, dedupe_capacity=settings.dedupe_capacity)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        close = getattr(processor, "aclose", None)
        if close is not None:
            await close()

    app = FastAPI(title="hl7gw function", version="0.1.0", lifespan=lifespan)
    app.state.intake = intake
    app.state.settings = settings

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/events")
    async def post_event(request: Request) -> JSONResponse:
        return await _post_event(request, intake, settings.max_body_bytes)

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


async def _post_event(request: Request, intake: Intake, limit: int) -> JSONResponse:
    declared = request.headers.get("content-length", "")
    # ASCII digits only ("²".isdigit() is True, int("²") fails); 19+ digits is too large
    if declared.isascii() and declared.isdigit() and (len(declared) > 18
                                                      or int(declared) > limit):
        return _error(413, "payload_too_large", f"body exceeds {limit} bytes")
    body = await request.body()
    if len(body) > limit:
        return _error(413, "payload_too_large", f"body exceeds {limit} bytes")
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if media == BATCH_JSON:
            raise UnsupportedMediaType("batched CloudEvents are not accepted; send one event")
        if media == STRUCTURED_JSON:
            event = Event.from_structured(body)
        else:
            event = Event.from_http(request.headers, body)
        status = await intake.accept(event)
    except UnsupportedMediaType as exc:
        return _error(415, "unsupported_media_type", str(exc))
    except InvalidEvent as exc:
        return _error(400, "invalid_event", str(exc))
    except EventRejected as exc:
        log.warning("event rejected by processor", extra={"error": type(exc).__name__})
        return _error(422, "rejected", str(exc))
    except Exception as exc:  # noqa: BLE001 - any processor failure is a retriable 500
        log.error("processor failed", extra={"error": type(exc).__name__})
        return _error(500, "processing_failed", "the processor failed; try again")
    return _answer(status, event.id)


def _answer(status: Status, event_id: str) -> JSONResponse:
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
