"""What the function does with an event: the :class:`Processor` protocol and a sample.

``MemoryStore`` is the sample processor used by the demo and the tests: it keeps what it
receives in memory so ``GET /events`` can show it. It holds whole Bundles (PHI), so it is
for demos and tests, not for a shared deployment; a real processor writes to a FHIR server
or a store of its own and is passed to ``create_app``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable

from connectors.events import Event


@runtime_checkable
class Processor(Protocol):
    """Handles one accepted event; raising ``EventRejected`` refuses it for good.

    A processor that has something for the EHR returns it: a FHIR resource or Bundle
    (e.g. a RiskAssessment with the Observations it is based on, and the Patient). The
    app answers it with 201 ``application/fhir+json``; the bridge publishes it to the
    outbound topic and the gateway sends it to the EHR as HL7 v2 (docs/outbound.md).
    ``None``: nothing to send back.
    """

    async def process(self, event: Event, bundle: dict[str, Any]) -> dict[str, Any] | None:
        """Do the work for ``event``, whose data parsed to ``bundle``; the result, if any."""


@runtime_checkable
class EventReader(Protocol):
    """A processor that can show what it received (backs ``GET /events``)."""

    def list_events(self) -> list[dict[str, Any]]:
        """Every kept event, oldest first."""

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """One kept event by CloudEvent id, or None."""


def resource_types(resource: dict[str, Any]) -> list[str]:
    """The resource types in a Bundle's entries (or the one resource's own type)."""
    if resource.get("resourceType") != "Bundle":
        kind = resource.get("resourceType")
        return [kind] if isinstance(kind, str) else []
    types = []
    for entry in resource.get("entry") or []:
        inner = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(inner, dict) and isinstance(inner.get("resourceType"), str):
            types.append(inner["resourceType"])
    return types


def summary(event: Event, bundle: dict[str, Any]) -> dict[str, Any]:
    """The record ``GET /events`` shows for one event."""
    return {"id": event.id, "type": event.type, "source": event.source,
            "subject": event.subject, "time": event.time,
            "resource_types": resource_types(bundle), "bundle": bundle}


class MemoryStore:
    """Sample processor: keeps the last ``capacity`` events in memory, oldest first."""

    def __init__(self, capacity: int = 1000) -> None:
        self._capacity = capacity
        self._events: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def process(self, event: Event, bundle: dict[str, Any]) -> None:
        """Remember the event (a repeated id replaces the earlier one in place)."""
        self._events[event.id] = summary(event, bundle)
        while len(self._events) > self._capacity:
            self._events.popitem(last=False)

    def list_events(self) -> list[dict[str, Any]]:
        """Every kept event, in the order received."""
        return list(self._events.values())

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """One kept event by CloudEvent id, or None."""
        return self._events.get(event_id)

    def clear(self) -> None:
        """Forget everything (tests and demos)."""
        self._events.clear()


class ProcessorChain:
    """Several processors, in order, for each event; the result is the last one given.

    For the local demo: a :class:`MemoryStore` (so ``GET /events`` shows what came) in
    front of a processor that answers (NEWS2). A processor that raises stops the chain.
    """

    def __init__(self, *processors: Processor) -> None:
        self.processors = processors

    async def process(self, event: Event, bundle: dict[str, Any]) -> dict[str, Any] | None:
        """Run each processor; the last non-None result."""
        result = None
        for processor in self.processors:
            answer = await processor.process(event, bundle)
            if answer is not None:
                result = answer
        return result

    def list_events(self) -> list[dict[str, Any]]:
        """What the first processor that keeps events kept."""
        reader = self._reader()
        return reader.list_events() if reader else []

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """One kept event, from the first processor that keeps events."""
        reader = self._reader()
        return reader.get_event(event_id) if reader else None

    def _reader(self) -> EventReader | None:
        return next((p for p in self.processors if isinstance(p, EventReader)), None)
