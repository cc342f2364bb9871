"""The AWS Lambda entry point: HTTP events through Mangum, Kafka batches directly.

HTTP invocations (API Gateway REST and HTTP APIs, function URLs, ALB) go through Mangum
to the same FastAPI app. Kafka event-source invocations (Amazon MSK ``aws:kafka``,
self-managed ``SelfManagedKafka``) arrive as ``records`` keyed ``"<topic>-<partition>"``,
each record with base64 ``key``/``value`` and ``headers`` as ``[{name: [byte, ...]}]``;
each record is decoded to an :class:`Event` and goes through the app's intake.

The answer to a Kafka batch is a partial batch response: ``{"batchItemFailures":
[{"itemIdentifier": {"topic-partition": "t-0", "offset": 15}}]}`` (the composite id AWS
uses for Kafka; turn on ``ReportBatchItemFailures`` on the event source mapping). Once a
record of a partition fails, the later records of that partition are not processed and are
reported too, so a retry keeps their order. Give the mapping a bounded
``MaximumRetryAttempts`` and an on-failure destination so a poison record cannot stall
its partition forever.

A record whose processor answers with a FHIR result has it published to the outbound
topic by the ``results`` sink (``connectors.results.KafkaResults``; the bridge does it for
HTTP deliveries) before the record counts as done; a publish that fails fails the record,
and its retry publishes the same result id again.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from mangum import Mangum

from connectors import tracing
from connectors.cloud.intake import Intake, Status, UnsupportedMediaType
from connectors.cloud.metrics import FunctionMetrics
from connectors.errors import EventRejected, InvalidEvent
from connectors.events import Event

log = logging.getLogger(__name__)

KAFKA_SOURCES = frozenset({"aws:kafka", "SelfManagedKafka", "aws:SelfManagedKafka"})

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]
ResultSink = Callable[[Event, dict[str, Any]], Awaitable[None]]


class _Loop:
    """One event loop per Lambda process, reused across invocations (warm starts)."""

    loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        if cls.loop is None or cls.loop.is_closed():
            cls.loop = asyncio.new_event_loop()
            atexit.register(cls.loop.close)
        # Mangum looks the loop up with get_event_loop(); make sure it finds this one.
        asyncio.set_event_loop(cls.loop)
        return cls.loop


def is_kafka_event(event: dict[str, Any]) -> bool:
    """Whether a Lambda event comes from an MSK or self-managed Kafka event source."""
    return event.get("eventSource") in KAFKA_SOURCES and isinstance(event.get("records"), dict)


def make_handler(app: FastAPI, results: ResultSink | None = None) -> LambdaHandler:
    """A Lambda handler for ``app``: Mangum for HTTP events, the intake for Kafka batches
    (whose results go to ``results``, when given)."""
    _Loop.get()
    http = Mangum(app, lifespan="off")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        loop = _Loop.get()
        try:
            if is_kafka_event(event):
                intake: Intake = app.state.intake
                return loop.run_until_complete(handle_kafka_batch(event, intake,
                                                                  app.state.metrics, results))
            return http(event, context)
        finally:
            tracing.flush()  # Lambda freezes the process once the handler returns

    return handler


def decode_record(record: dict[str, Any]) -> Event:
    """One Kafka event-source record as an :class:`Event`; raises :class:`InvalidEvent`."""
    key = _b64(record.get("key"), "key")
    value = _b64(record.get("value"), "value")
    headers: list[tuple[str, bytes]] = []
    for header in record.get("headers") or []:
        for name, values in header.items():
            # Java bytes arrive signed (-128..127); mask them back to 0..255.
            headers.append((name, bytes(int(b) & 0xFF for b in values)))
    return Event.from_kafka(key, value, headers)


async def handle_kafka_batch(event: dict[str, Any], intake: Intake,
                             metrics: FunctionMetrics | None = None,
                             results: ResultSink | None = None) -> dict[str, Any]:
    """Process a Kafka event-source batch; returns the partial batch response."""
    failures: list[dict[str, Any]] = []
    for group, records in event["records"].items():
        failed = False
        for record in records:
            tp = f"{record['topic']}-{record['partition']}" if "topic" in record else group
            ident = {"topic-partition": tp, "offset": record.get("offset")}
            if not failed and not await _process(record, intake, ident, metrics, results):
                failed = True
            if failed:
                failures.append({"itemIdentifier": ident})
    return {"batchItemFailures": failures}


async def _process(record: dict[str, Any], intake: Intake, ident: dict[str, Any],
                   metrics: FunctionMetrics | None = None,
                   results: ResultSink | None = None) -> bool:
    started = time.perf_counter()
    try:
        event = decode_record(record)
        # The record's traceparent extension, set by the gateway's publisher.
        with tracing.span("hl7gw.function.event", kind="consumer",
                          parent=event.extensions.get(tracing.TRACEPARENT),
                          attributes={"cloudevents.event_id": event.id,
                                      "cloudevents.event_type": event.type,
                                      "messaging.system": "kafka",
                                      "messaging.kafka.offset": record.get("offset")}):
            taken = await intake.take(event)
            status = taken.status
            if taken.result is not None:
                if results is None:
                    log.warning("a result was answered but no results topic is set "
                                "(HL7GW_OUTBOUND_TOPIC); it is not sent back",
                                extra={"event_id": event.id})
                else:
                    await results(event, taken.result)
    except Exception as exc:  # noqa: BLE001 - any failure is reported back for a retry
        log.error("kafka record failed", extra={**ident, "error": type(exc).__name__})
        if metrics is not None:
            metrics.observe(_result_of(exc), time.perf_counter() - started)
        return False
    if metrics is not None:
        metrics.observe(status.value, time.perf_counter() - started)
    return status is not Status.IN_PROGRESS


def _result_of(exc: Exception) -> str:
    """The ``hl7gw_function_events_total`` result of a record that failed."""
    if isinstance(exc, UnsupportedMediaType):
        return "unsupported_media_type"
    if isinstance(exc, InvalidEvent):
        return "invalid_event"
    return "rejected" if isinstance(exc, EventRejected) else "processing_failed"


def _b64(value: Any, name: str) -> bytes | None:
    if value is None:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEvent(f"record {name} is not base64") from exc
