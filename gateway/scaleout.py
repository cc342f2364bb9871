"""``hl7gw mapper``: map raw messages from Kafka in a consumer group (scale-out mode).

For sites whose mapping load outgrows one machine (docs/scale-out.md). With a
``scale_out:`` section the gateway maps nothing: after a message's durable commit and ACK
its publisher sends the raw HL7 v2 bytes to ``scale_out.raw_topic`` as a CloudEvent keyed
by the patient's id (``gateway.publisher.raw_event_for``). Any number of mapper
processes, one consumer group, share the raw topic's partitions; each maps what it is
given and publishes the FHIR events exactly as the in-process path does:

* the same event (``gateway.publisher.fhir_event``): id, key, type, time, headers and
  Bundle bytes, so a consumer cannot tell which mode made it;
* the same order per patient: one patient's raw messages are in one partition, which one
  mapper reads in order, and it publishes them in that order under the patient's key;
* the same profiles (``profiles.dir``, reloaded when the folder changes) and routes;
* what the in-process path marks ``failed`` in the spool (a message the mapper refuses,
  or a record Kafka refuses for good) goes to ``scale_out.dlq_topic`` instead: the raw
  record with ``dlq_*`` headers saying why (no PHI), and ``hl7gw_mapper_dead_letters``.

Offsets are committed only after every record made from a batch was acknowledged by
Kafka (at-least-once: after a crash or a rebalance a message may be mapped and published
again, with the same ids). A revoke waits for the batch in hand and commits it first, so a
rebalance does not by itself cause repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from connectors import tracing
from connectors.bridge.dlq import DLQ_PREFIX, MAX_MESSAGE
from connectors.errors import InvalidEvent, PublishError
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.kafka.errors import KafkaClientError, kafka_errors
from connectors.settings import KafkaSettings
from gateway import traces
from gateway.config import ScaleOutSettings
from gateway.mapping import Mapped, MappingPool, MapRequest
from gateway.profiles import ProfileStore
from gateway.publisher import fhir_event
from mappers.profiles import EMPTY_PROFILES

log = logging.getLogger("hl7gw.mapper")

POLL_TIMEOUT_MS = 250  # one getmany's wait: bounds how quickly a stop is noticed
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 5.0


class MapperMetrics:
    """Prometheus metrics of one mapper process; no PHI in labels."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter("hl7gw_mapper_consumed", "Raw messages taken from Kafka",
                                registry=r)
        self.published = Counter("hl7gw_mapper_published", "FHIR events acknowledged by Kafka",
                                 ["topic"], registry=r)
        self.dead_letters = Counter("hl7gw_mapper_dead_letters",
                                    "Messages sent to the dead-letter topic, by reason",
                                    ["reason"], registry=r)
        self.publish_errors = Counter("hl7gw_mapper_publish_errors",
                                      "Retriable publish failures (the batch is sent again)",
                                      registry=r)
        self.batch_seconds = Histogram("hl7gw_mapper_publish_seconds",
                                       "Time from a batch's first send to its last ack",
                                       registry=r)
        self.assigned = Gauge("hl7gw_mapper_assigned_partitions",
                              "Raw-topic partitions this mapper holds", registry=r)


@dataclass(frozen=True)
class _Item:
    """One consumed record: its event (None when unreadable) and where it came from."""

    tp: TopicPartition
    record: Any
    event: Event | None
    error: str | None = None


class MapperService:
    """One member of the ``scale_out.group_id`` consumer group; ``run()`` until stopped."""

    def __init__(self, scale_out: ScaleOutSettings, kafka: KafkaSettings, *,
                 profiles: ProfileStore | None = None, mapping: MappingPool | None = None,
                 metrics: MapperMetrics | None = None) -> None:
        self.settings = scale_out
        self.kafka = kafka
        self.profiles = profiles
        self.mapping = mapping or MappingPool(scale_out.mapping_workers)
        self.metrics = metrics or MapperMetrics()
        self.producer = EventProducer(kafka)
        self._consumer: Any = None
        self._stopping = asyncio.Event()
        self._batch_lock = asyncio.Lock()  # held while a batch is mapped and published
        self._pending: dict[TopicPartition, int] = {}  # next offset to commit
        # the batch being published: its task, its records, when its publishing began
        self._inflight: tuple[asyncio.Task[None], list[_Item], float] | None = None
        self.assigned: set[TopicPartition] = set()
        self.started = False

    @property
    def ready(self) -> bool:
        """Consuming: started and holding at least one partition of the raw topic."""
        return self.started and bool(self.assigned)

    def request_stop(self) -> None:
        """Finish the batch in hand, commit it and return from :meth:`run`."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume, map and publish until :meth:`request_stop`."""
        async with contextlib.AsyncExitStack() as stack:
            if self.profiles is not None:
                self.profiles.load()
            self.mapping.start()
            stack.callback(self.mapping.stop, 5.0)
            with kafka_errors("to start the producer", KafkaClientError):
                await self.producer.start()
            stack.push_async_callback(self.producer.stop, 5.0)
            consumer = AIOKafkaConsumer(**self.kafka.client_options(),
                                        group_id=self.settings.group_id,
                                        enable_auto_commit=False,
                                        auto_offset_reset="earliest")
            consumer.subscribe([self.settings.raw_topic], listener=_CommitOnRevoke(self))
            with kafka_errors("to start the consumer", KafkaClientError):
                await consumer.start()
            self._consumer = consumer
            stack.push_async_callback(self._close, consumer)
            if self.profiles is not None:
                watch = asyncio.create_task(self.profiles.watch(), name="profiles")
                stack.callback(watch.cancel)
            self.started = True
            log.info("mapper started", extra={"topic": self.settings.raw_topic,
                                              "group_id": self.settings.group_id})
            try:
                await self._consume()
            finally:
                self.started = False
        log.info("mapper stopped", extra={"topic": self.settings.raw_topic})

    async def _close(self, consumer: Any) -> None:
        try:
            await self._commit()
        finally:
            self._consumer = None
            await consumer.stop()

    async def _consume(self) -> None:
        """Fetch, map and publish, one batch's mapping overlapping the last one's publish.

        Batch k+1 is fetched and mapped (in the worker) while batch k's records wait for
        their acks; k's offsets are committed once they came, before k+1 is published, so
        records still leave in consumed order and a commit never covers an unacked one.
        """
        try:
            while not self._stopping.is_set():
                with kafka_errors("to fetch records", KafkaClientError):
                    batch = await self._consumer.getmany(timeout_ms=POLL_TIMEOUT_MS,
                                                         max_records=self.settings.max_batch)
                async with self._batch_lock:
                    items = [_item(tp, record) for tp, records in batch.items()
                             for record in records if tp in self.assigned]
                    sends = await self._map(items) if items else []
                    await self._settle_inflight()
                    if items:
                        started = asyncio.get_running_loop().time()
                        self._inflight = (asyncio.create_task(self._publish(sends)), items,
                                          started)
            async with self._batch_lock:
                await self._settle_inflight()
        except _Abandoned:
            log.warning("stopping while Kafka fails: the last batch is left uncommitted "
                        "and will be mapped again")

    async def _settle_inflight(self) -> None:
        """Wait for the batch being published, then commit its offsets (lock held)."""
        if self._inflight is None:
            return
        task, items, started = self._inflight
        self._inflight = None
        await task  # raises _Abandoned when stopping while Kafka fails
        self.metrics.batch_seconds.observe(asyncio.get_running_loop().time() - started)
        for item in items:
            self._pending[item.tp] = item.record.offset + 1
        await self._commit()

    async def _map(self, items: Sequence[_Item]) -> list[_Send]:
        """The records ``items`` make, in order: FHIR events and dead letters."""
        self.metrics.consumed.inc(len(items))
        live = self.profiles.live() if self.profiles is not None else (0, EMPTY_PROFILES)
        readable = [item for item in items if item.event is not None]
        requests: list[MapRequest] = [_request(item.event, live[0]) for item in readable
                                      if item.event is not None]
        started = time.time_ns()
        maps = iter(await self.mapping.map(requests, live))
        traced = tracing.enabled()
        sends: list[_Send] = []
        dead = self.settings.dead_letter_topic
        for item in items:
            event = item.event
            if event is None:
                sends.append((dead, _dead_letter(item, "unreadable", item.error or ""), item))
                continue
            mapped: Mapped = next(maps)
            if mapped.payload is None:
                sends.append((dead, _dead_letter(item, "unmappable", mapped.error or ""), item))
                continue
            message_type = event.extensions.get("hl7messagetype", "").replace("_", "^")
            out = fhir_event(mapped, event_id=_fhir_id(event), source=event.source,
                             message_type=message_type, time=event.time,
                             spool_row=event.extensions.get("hl7spoolrow", ""))
            if traced:
                out = traces.trace_remote_mapping(event, out, mapped, started)
            topic = self.kafka.topic_for(message_type, frozenset(mapped.resource_types))
            sends.append((topic, out, item))
        return sends

    async def _publish(self, sends: list[_Send]) -> None:
        """Send in order per topic; resend what failed (retriable) until all is acked.

        A record refused for good (too large, not authorised) is dead-lettered instead, as
        the in-process path marks its row failed.
        """
        delay = RETRY_INITIAL_S
        while sends:
            results = await self._send(sends)
            again: list[_Send] = []
            for (topic, record, item), result in zip(sends, results, strict=True):
                if not isinstance(result, PublishError):
                    if isinstance(record, DeadLetter):
                        self.metrics.dead_letters.labels(record.reason).inc()
                    else:
                        self.metrics.published.labels(topic).inc()
                elif result.retriable or isinstance(record, DeadLetter):
                    again.append((topic, record, item))
                else:
                    log.warning("kafka refused a mapped record for good; dead-lettered",
                                extra={"topic": topic, "error_class": result.cause or
                                       type(result).__name__, "event_id": record.id})
                    again.append((self.settings.dead_letter_topic,
                                  _dead_letter(item, "refused", str(result)), item))
            sends = again
            if sends:
                if self._stopping.is_set():
                    # Stopping while Kafka fails: the batch stays uncommitted and is mapped
                    # again by whoever takes the partition next (same ids).
                    raise _Abandoned
                self.metrics.publish_errors.inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _send(self, sends: Sequence[_Send]) -> list[tuple[int, int] | PublishError]:
        """One result per send, in order; FHIR events pipelined per topic."""
        results: list[tuple[int, int] | PublishError | None] = [None] * len(sends)
        topics = dict.fromkeys(t for t, r, _ in sends if isinstance(r, Event))
        for topic in topics:
            positions = [n for n, (t, r, _) in enumerate(sends)
                         if t == topic and isinstance(r, Event)]
            events = [r for n in positions if isinstance(r := sends[n][1], Event)]
            answers = await self.producer.send_batch(topic, events)
            for n, answer in zip(positions, answers, strict=True):
                results[n] = answer
        for n, (topic, record, _) in enumerate(sends):
            if isinstance(record, DeadLetter):
                try:
                    results[n] = await self.producer.send_record(
                        topic, key=record.key, value=record.value, headers=record.headers)
                except PublishError as exc:
                    results[n] = exc
        return [r for r in results if r is not None]

    async def _commit(self) -> None:
        """Commit the offsets of every batch done (only ever of delivered records)."""
        if not self._pending or self._consumer is None:
            return
        offsets, self._pending = dict(self._pending), {}
        with kafka_errors("to commit offsets", KafkaClientError):
            await self._consumer.commit(offsets)


_Send = tuple[str, "Event | DeadLetter", _Item]  # topic, record, what it came from


class _Abandoned(Exception):
    """A batch left uncommitted at a stop because Kafka kept failing."""


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Finish the batch in hand and commit before partitions move to another mapper."""

    def __init__(self, service: MapperService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.service._batch_lock:
            with contextlib.suppress(Exception):
                await self.service._settle_inflight()
            with contextlib.suppress(Exception):
                await self.service._commit()
            self.service.assigned.difference_update(revoked)
            self.service.metrics.assigned.set(len(self.service.assigned))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.service.assigned.update(assigned)
        self.service.metrics.assigned.set(len(self.service.assigned))


def _item(tp: TopicPartition, record: Any) -> _Item:
    try:
        return _Item(tp, record, Event.from_kafka(record.key, record.value, record.headers))
    except InvalidEvent as exc:
        return _Item(tp, record, None, str(exc))


def _charset(content_type: str) -> str:
    """``application/hl7-v2; charset=iso-8859-1`` -> ``iso-8859-1`` (else UTF-8)."""
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


def _request(event: Event | None, generation: int) -> MapRequest:
    assert event is not None
    return (event.data, _charset(event.content_type),
            event.extensions.get("hl7timezone", "UTC"), generation)


def _fhir_id(event: Event) -> str:
    """The id the in-process path gives the FHIR event: ``hl7eventid``, else the raw
    event's id without its ``-v2``."""
    return event.extensions.get("hl7eventid") or event.id.removesuffix("-v2")


@dataclass(frozen=True)
class DeadLetter:
    """A raw record as it came, plus ``dlq_*`` headers saying why it was not mapped."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    reason: str  # unreadable | unmappable | refused


def _dead_letter(item: _Item, reason: str, detail: str) -> DeadLetter:
    """The raw record with why it was not mapped (error texts name fields, never values)."""
    record = item.record
    headers = [(name, value) for name, value in (record.headers or ())
               if not name.startswith(DLQ_PREFIX)]
    fields = {"topic": item.tp.topic, "partition": str(item.tp.partition),
              "offset": str(record.offset), "error_class": reason,
              "error_message": detail[:MAX_MESSAGE]}
    headers.extend((DLQ_PREFIX + k, v.encode()) for k, v in fields.items())
    return DeadLetter(record.key, record.value or b"", headers, reason)


def create_mapper_app(service: MapperService) -> Any:
    """``/healthz`` (the process answers), ``/readyz`` (200 while it holds partitions of
    the raw topic) and ``/metrics`` (Prometheus) for one mapper process."""
    from fastapi import FastAPI, Response
    from fastapi.responses import JSONResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    app = FastAPI(title="hl7gw mapper", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        detail = {"started": service.started, "partitions": len(service.assigned),
                  "topic": service.settings.raw_topic, "group_id": service.settings.group_id}
        return JSONResponse({"ready": service.ready, **detail},
                            status_code=200 if service.ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    return app
