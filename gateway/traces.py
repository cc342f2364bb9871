"""The gateway's spans (``connectors.tracing``): the MLLP frame, its mapping, its records.

The frame span starts when a frame is read and ends when its answer is written; intake
stores its W3C traceparent with the spool row (``messages.traceparent``). The publisher
runs later, in batches, with the mapping in a worker process; for each row it records a
``hl7gw.map`` span over the batch's mapping time and a ``hl7gw.kafka.publish`` span per
record, both children of the row's frame span, and puts the publish span's traceparent on
the record as the CloudEvents ``traceparent`` extension, where the bridge picks it up.
In scale-out mode the raw record carries it instead, and ``hl7gw mapper`` records the
``hl7gw.map`` span and puts its own context on the FHIR record.

Callers use these only while :func:`connectors.tracing.enabled`; with tracing off the
intake and publish paths do not call in here at all.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from connectors import tracing
from connectors.errors import PublishError
from connectors.events import Event
from gateway.intake import IntakeResult
from gateway.mapping import Mapped
from gateway.spool import Accepted, PendingRow

Answer = Callable[[bytes, str], Awaitable[IntakeResult]]


def traced_frames(answer: Answer, listener: str) -> Answer:
    """``answer`` (an intake method) inside a ``hl7gw.mllp.frame`` span per frame."""

    async def traced(frame: bytes, peer: str) -> IntakeResult:
        with tracing.span("hl7gw.mllp.frame", kind="server",
                          attributes={"hl7gw.listener": listener,
                                      "hl7gw.bytes": len(frame)}) as current:
            result = await answer(frame, peer)
            tracing.set_attributes(current, {"hl7gw.ack_code": result.code})
            if result.code[1:] in ("E", "R"):
                tracing.fail(current, f"answered {result.code}")
            return result

    return traced


def row_attributes(row: Accepted | PendingRow) -> dict[str, Any]:
    """What a span may say about a message: its ids and type, never its content."""
    return {"hl7gw.event_id": row.event_id, "hl7gw.sender": row.sender,
            "hl7gw.control_id": row.control_id, "hl7gw.message_type": row.message_type}


def trace_mapping(rows: Sequence[PendingRow], maps: Sequence[Mapped], started_ns: int) -> None:
    """One ``hl7gw.map`` span per row, over the time its batch took in the worker."""
    ended = time.time_ns()
    for row, mapped in zip(rows, maps, strict=True):
        span = tracing.start("hl7gw.map", parent=row.traceparent, start_time=started_ns,
                             attributes={**row_attributes(row), "hl7gw.spool_row": row.id,
                                         "hl7gw.batch_size": len(rows),
                                         "hl7gw.resources": len(mapped.resource_types)})
        tracing.set_attributes(span, {"hl7gw.outcome": "failed" if mapped.payload is None
                                      else "mapped"})
        tracing.end(span, error="mapping failed" if mapped.payload is None else None,
                    end_time=ended)


Send = tuple[int, str, Event]  # (index in the batch's ready rows, topic, event)


def trace_sends(rows: Sequence[PendingRow], sends: Sequence[Send]
                ) -> tuple[list[Send], list[Any]]:
    """A started ``hl7gw.kafka.publish`` span per record, and the events carrying it.

    ``rows[i]`` is the row of a send with index ``i``. Each event gets the
    ``traceparent`` extension naming its span.
    """
    traced: list[Send] = []
    spans: list[Any] = []
    for i, topic, event in sends:
        row = rows[i]
        span = tracing.start("hl7gw.kafka.publish", kind="producer", parent=row.traceparent,
                             attributes={"messaging.system": "kafka",
                                         "messaging.operation.type": "send",
                                         "messaging.destination.name": topic,
                                         "messaging.message.id": event.id,
                                         "cloudevents.event_id": event.id,
                                         "cloudevents.event_type": event.type,
                                         "hl7gw.spool_row": row.id,
                                         "hl7gw.message_type": row.message_type})
        parent = tracing.traceparent_of(span)
        if parent is not None:
            event = replace(event, extensions={**event.extensions,
                                               tracing.TRACEPARENT: parent})
        traced.append((i, topic, event))
        spans.append(span)
    return traced, spans


def trace_remote_mapping(raw: Event, out: Event, mapped: Mapped, started_ns: int) -> Event:
    """Scale-out: the mapping in ``hl7gw mapper`` as a ``hl7gw.map`` span, child of the raw
    record's publish span; ``out`` (the FHIR event) comes back carrying it."""
    span = tracing.start("hl7gw.map", kind="consumer", parent=raw.extensions.get(
        tracing.TRACEPARENT), start_time=started_ns,
        attributes={"cloudevents.event_id": out.id, "cloudevents.event_type": out.type,
                    "hl7gw.resources": len(mapped.resource_types), "hl7gw.outcome": "mapped"})
    tracing.end(span)
    parent = tracing.traceparent_of(span)
    if parent is None:
        return out
    return replace(out, extensions={**out.extensions, tracing.TRACEPARENT: parent})


def end_sends(spans: Sequence[Any], results: Sequence[tuple[int, int] | PublishError]) -> None:
    """End the publish spans with where each record went, or its error."""
    for span, result in zip(spans, results, strict=True):
        if isinstance(result, PublishError):
            tracing.end(span, error=result.cause or type(result).__name__)
            continue
        tracing.set_attributes(span, {"messaging.destination.partition.id": str(result[0]),
                                      "messaging.kafka.offset": result[1]})
        tracing.end(span)
