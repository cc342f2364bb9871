"""What the bridge writes to Kafka besides committing: dead letters and functions' results.

Both are sent before the event's offset is committed, retried with backoff while Kafka
says a retry may succeed (the bridge's ``sleep`` ends the wait when it stops), and turned
into a fatal connector error otherwise: the bridge then stops with the record uncommitted.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from connectors.bridge.delivery import DeliveryResult, policy_of
from connectors.bridge.dlq import dead_letter_headers
from connectors.bridge.metrics import BridgeMetrics
from connectors.bridge.retry import backoff
from connectors.errors import ConnectorError, DeadLetterError, InvalidEvent, PublishError
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.results import result_event
from connectors.settings import BridgeSettings

log = logging.getLogger("connectors.bridge.bridge")


class Outputs:
    """The bridge's producer side for one record: its DLQ and its result topic."""

    def __init__(self, settings: BridgeSettings, producer: EventProducer | None,
                 metrics: BridgeMetrics, sleep: Callable[[float], Awaitable[None]]) -> None:
        self._settings = settings
        self._producer = producer
        self._metrics = metrics
        self._sleep = sleep

    async def dead_letter(self, record: Any, result: DeliveryResult) -> None:
        error = result.error or ConnectorError("delivery failed")
        where = f"{record.topic}/{record.partition}@{record.offset}"
        dlq_topic = self._settings.dlq_topic
        if self._producer is None or dlq_topic is None:
            raise DeadLetterError(f"event at {where} was not delivered ({error}) and no "
                                  "dlq_topic is configured; stopping without committing it")
        headers = dead_letter_headers(record.headers, topic=record.topic,
                                      partition=record.partition, offset=record.offset,
                                      error=error, attempts=result.attempts,
                                      status=result.status, target=self._settings.target_url)
        await self._send(dlq_topic, record.key, record.value, headers,
                         lambda exc: DeadLetterError(f"event at {where} could not be "
                                                     f"dead-lettered: {exc}"))
        self._metrics.dlq.inc()

    async def publish_result(self, cause: Event, body: bytes) -> None:
        """Publish the function's FHIR answer to ``outbound_topic``, retrying while Kafka
        says a retry may succeed; the cause is not committed until it is published."""
        topic = self._settings.outbound_topic
        if topic is None or self._producer is None:
            self._metrics.results.labels(outcome="not_published").inc()
            return
        try:
            event = result_event(cause, body)
        except InvalidEvent:
            self._metrics.results.labels(outcome="invalid").inc()
            return
        await self._send(topic, event.key, event.data, event.kafka_headers(),
                         lambda exc: ConnectorError(f"the result of event {cause.id} could "
                                                    f"not be published to {topic}: {exc}"))
        self._metrics.results.labels(outcome="published").inc()
        log.info("result published", extra={"event_id": cause.id, "result_id": event.id,
                                            "topic": topic})

    async def _send(self, topic: str, key: bytes | None, value: bytes | None,
                    headers: list[tuple[str, bytes]],
                    fatal: Callable[[PublishError], ConnectorError]) -> None:
        """Send one record, retrying with backoff while Kafka says a retry may succeed;
        an error that will not pass is raised as ``fatal(error)`` (the bridge stops,
        leaving the record uncommitted)."""
        assert self._producer is not None
        policy = policy_of(self._settings)
        for attempt in itertools.count(1):
            try:
                await self._producer.send_record(topic, key=key, value=value, headers=headers)
                return
            except PublishError as exc:
                if not exc.retriable:
                    raise fatal(exc) from exc
                await self._sleep(backoff(attempt, policy, 1.0))

