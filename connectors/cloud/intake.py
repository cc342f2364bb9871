"""Accepting one event, the same way for HTTP requests and Lambda Kafka records.

The body must be a JSON object with a ``resourceType`` (a FHIR Bundle, normally). Events
are deduplicated on their CloudEvent id: an id is remembered only after its processor
succeeded, so a failed event can be sent again. The memory is per process (per Lambda
execution environment) and bounded, so it is a fast path, not a guarantee; processors
stay idempotent, which the gateway's deterministic FHIR ids make easy.

A processor may answer an event with a FHIR result (``Processor.process`` returns it); the
result is remembered with the id, so a repeated event gets the same answer again: the
bridge then publishes it again under the same result id (``connectors.results``), which
covers a bridge that crashed between the answer and its publish.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.cloud.processor import Processor
from connectors.errors import InvalidEvent
from connectors.events import Event, is_json_media_type


class UnsupportedMediaType(InvalidEvent):
    """The event's data is not JSON, so it cannot be a FHIR Bundle."""


class Status(enum.Enum):
    """How an event was taken."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True)
class Taken:
    """How an event was taken, and the FHIR result its processor answered (or None)."""

    status: Status
    result: dict[str, Any] | None = None


class SeenIds:
    """Bounded memory of processed event ids (with their results), plus the ids being
    processed right now."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._running: set[str] = set()

    def begin(self, event_id: str) -> Status:
        """Claim ``event_id``: ACCEPTED if the caller should process it now."""
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            return Status.DUPLICATE
        if event_id in self._running:
            return Status.IN_PROGRESS
        self._running.add(event_id)
        return Status.ACCEPTED

    def result_of(self, event_id: str) -> dict[str, Any] | None:
        """The result remembered for a processed id (None: none, or forgotten)."""
        return self._seen.get(event_id)

    def finish(self, event_id: str, *, processed: bool,
               result: dict[str, Any] | None = None) -> None:
        """Release the claim; remember the id (and its result) only if it was processed."""
        self._running.discard(event_id)
        if processed:
            self._seen[event_id] = result
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)


def parse_bundle(event: Event) -> dict[str, Any]:
    """The event's data as a FHIR resource object; raises :class:`InvalidEvent`."""
    if not is_json_media_type(event.content_type):
        raise UnsupportedMediaType(f"content type {event.content_type!r} is not JSON; "
                                   "send application/fhir+json")
    try:
        resource = orjson.loads(event.data)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("event data is not valid JSON") from exc
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise InvalidEvent("event data must be a FHIR resource (a JSON object with "
                           "resourceType), normally a Bundle")
    return resource


class Intake:
    """Validates, deduplicates and hands events to the processor."""

    def __init__(self, processor: Processor, *, dedupe_capacity: int = 10000) -> None:
        self.processor = processor
        self._seen = SeenIds(dedupe_capacity)

    async def accept(self, event: Event) -> Status:
        """Process ``event`` unless its id was already processed or is being processed."""
        return (await self.take(event)).status

    async def take(self, event: Event) -> Taken:
        """As :meth:`accept`, with the processor's result (a repeat gets the first one's)."""
        bundle = parse_bundle(event)
        status = self._seen.begin(event.id)
        if status is Status.DUPLICATE:
            return Taken(status, self._seen.result_of(event.id))
        if status is not Status.ACCEPTED:
            return Taken(status)
        processed = False
        result: dict[str, Any] | None = None
        try:
            result = await self.processor.process(event, bundle)
            if result is not None and not (isinstance(result, dict)
                                           and isinstance(result.get("resourceType"), str)):
                raise TypeError(f"{type(self.processor).__name__}.process returned "
                                f"{type(result).__name__}, not a FHIR resource or None")
            processed = True
        finally:
            self._seen.finish(event.id, processed=processed, result=result)
        return Taken(Status.ACCEPTED, result)
