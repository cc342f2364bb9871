"""The outbound consumer: results from Kafka into the spool's outbound queue, then commit.

A member of consumer group ``outbound.group_id`` on ``outbound.topic``. For each fetched
batch it renders every result for each destination that takes its message type, commits
the rows to the spool in one transaction (durable: ``synchronous=FULL``), and only then
commits the Kafka offsets: a crash in between consumes the records again, and the queue's
unique (destination, event id) key takes each result once. Records that are not FHIR
results, or that no destination takes, are counted and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.errors import InvalidEvent
from connectors.events import Event
from connectors.kafka.errors import KafkaClientError, kafka_errors
from connectors.settings import KafkaSettings
from gateway.errors import SpoolError
from gateway.metrics import GatewayMetrics
from gateway.outbound.render import Renderer
from gateway.outbound.settings import OutboundSettings
from gateway.spool import Spool
from gateway.spool.outbound import OutboundItem
from mappers.outbound import message_types_for

log = logging.getLogger("hl7gw.outbound")

POLL_TIMEOUT_MS = 250
MAX_RECORDS = 200
RETRY_MAX_S = 30.0


class OutboundConsumer:
    """Consumes the outbound topic into the queue; ``run()`` until cancelled."""

    def __init__(self, settings: OutboundSettings, kafka: KafkaSettings, spool: Spool,
                 metrics: GatewayMetrics, renderers: list[Renderer],
                 on_queued: Callable[[set[str]], None]) -> None:
        self.settings = settings
        self.kafka = kafka
        self._spool = spool
        self._metrics = metrics
        self._renderers = renderers
        self._on_queued = on_queued
        self.state = "starting"  # starting, consuming, kafka unreachable, spool failing
        for outcome in ("queued", "duplicate", "unrouted", "invalid", "render_failed"):
            metrics.outbound_consumed.labels(outcome)

    async def run(self) -> None:
        """Join the group (retrying while Kafka is away) and queue what arrives."""
        delay = 0.5
        while True:
            consumer = self._consumer()
            try:
                with kafka_errors("to start the outbound consumer", KafkaClientError):
                    await consumer.start()
            except KafkaClientError as exc:
                self.state = "kafka unreachable"
                log.warning("outbound consumer cannot reach Kafka; retrying",
                            extra={"error_class": exc.cause, "retry_in_s": delay})
                with contextlib.suppress(Exception):
                    await consumer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            try:
                await self._consume(consumer)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(consumer.stop())

    def _consumer(self) -> Any:
        return AIOKafkaConsumer(self.settings.topic, **self.kafka.client_options(),
                                group_id=self.settings.group_id, enable_auto_commit=False,
                                auto_offset_reset="earliest")

    async def _consume(self, consumer: Any) -> None:
        self.state = "consuming"
        while True:
            try:
                with kafka_errors("to fetch outbound records", KafkaClientError):
                    batch = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS,
                                                   max_records=MAX_RECORDS)
            except KafkaClientError as exc:
                self.state = "kafka unreachable"
                log.warning("outbound fetch failed", extra={"error_class": exc.cause})
                await asyncio.sleep(1.0)
                continue
            self.state = "consuming"
            if not batch:
                continue
            records = [r for rs in batch.values() for r in rs]
            items = self._items(records)
            await self._queue(items)
            offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items()}
            await self._commit(consumer, offsets)

    def _items(self, records: list[Any]) -> list[OutboundItem]:
        items: list[OutboundItem] = []
        for record in records:
            try:
                event = Event.from_kafka(record.key, record.value, record.headers)
                resource = orjson.loads(event.data)
                if not isinstance(resource, dict) or "resourceType" not in resource:
                    raise InvalidEvent("not a FHIR resource")
            except (InvalidEvent, orjson.JSONDecodeError) as exc:
                self._metrics.outbound_consumed.labels("invalid").inc()
                log.warning("outbound record skipped: not a FHIR result", extra={
                    "topic": record.topic, "partition": record.partition,
                    "offset": record.offset, "error": str(exc)[:200]})
                continue
            types = message_types_for(resource)
            renderers = [r for r in self._renderers if types and r.takes(types)]
            if not renderers:
                self._metrics.outbound_consumed.labels("unrouted").inc()
                log.info("outbound result taken by no destination", extra={
                    "event_id": event.id, "message_types": types})
                continue
            for renderer in renderers:
                item = renderer.render(event, resource, types)
                if item.error:
                    self._metrics.outbound_consumed.labels("render_failed").inc()
                    log.warning("outbound result could not be rendered", extra={
                        "event_id": event.id, "destination": item.destination,
                        "error": item.error[:300]})
                items.append(item)
        return items

    async def _queue(self, items: list[OutboundItem]) -> None:
        """Commit ``items`` to the spool, retrying while it fails (nothing is committed to
        Kafka before they are on disk)."""
        if not items:
            return
        delay = 0.5
        while True:
            try:
                added = await self._spool.queue_outbound(items)
                break
            except SpoolError as exc:
                self.state = "spool failing"
                log.warning("outbound results not queued; retrying", extra={
                    "error_class": type(exc).__name__, "retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
        self.state = "consuming"
        queued = sum(1 for i in items if not i.error)
        self._metrics.outbound_consumed.labels("queued").inc(min(added, queued))
        if added < len(items):
            self._metrics.outbound_consumed.labels("duplicate").inc(len(items) - added)
        self._on_queued({i.destination for i in items if not i.error})

    async def _commit(self, consumer: Any, offsets: dict[TopicPartition, int]) -> None:
        try:
            with kafka_errors("to commit outbound offsets", KafkaClientError):
                await consumer.commit(offsets)
        except KafkaClientError as exc:
            # The rows are queued; a record consumed again is taken once (unique key).
            log.warning("outbound offset commit failed", extra={"error_class": exc.cause})
