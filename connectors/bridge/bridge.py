"""The bridge: a Kafka consumer-group member that delivers each event to a function target.

Per partition, records are handled strictly in order: one is delivered (or dead-lettered)
before the next is tried, and its offset + 1 is committed only then, so committed offsets
are always contiguous. Partitions of one batch are worked on concurrently. Delivery is
at-least-once: after a crash or a rebalance a record may reach the target again, with the
same ``Idempotency-Key`` (the CloudEvent id) so the target can drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import CollectorRegistry

from connectors.bridge.delivery import (
    DeliveryAbandoned,
    DeliveryResult,
    HttpTarget,
    max_poll_interval_ms,
    policy_of,
)
from connectors.bridge.dlq import dead_letter_headers
from connectors.bridge.metrics import BridgeMetrics, metrics_for
from connectors.bridge.retry import backoff
from connectors.errors import ConnectorError, DeadLetterError, InvalidEvent, PublishError
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.kafka.errors import Decision, decide, is_kafka_error
from connectors.settings import BridgeSettings, KafkaSettings

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 250  # how long one getmany waits; bounds how quickly stop() is noticed


class Bridge:
    """Consumes ``settings.topic`` in group ``settings.group_id`` and POSTs each event."""

    def __init__(self, settings: BridgeSettings, kafka: KafkaSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.kafka = kafka
        self.metrics: BridgeMetrics = metrics_for(registry)
        self._transport = transport
        self._stopping = asyncio.Event()
        self._finished = asyncio.Event()
        self._running = False
        self._consumer: Any = None
        self._producer: EventProducer | None = None
        self._target: HttpTarget | None = None
        self._batch: asyncio.Task[None] | None = None
        self._pending: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._committed: dict[TopicPartition, int] = {}
        self._generation = 0  # bumped on every revoke; a batch from an older one stops

    # lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until :meth:`stop`; raises :class:`ConnectorError` on a fatal failure.

        A bridge runs once; build a new one to run again.
        """
        if self._running:
            raise RuntimeError("Bridge.run() is already running")
        self._running = True
        try:
            async with contextlib.AsyncExitStack() as stack:
                await self._open(stack)
                log.info("bridge started", extra={"topic": self.settings.topic,
                                                  "group_id": self.settings.group_id})
                await self._consume()
        finally:
            self._running = False
            self._finished.set()
            log.info("bridge stopped", extra={"topic": self.settings.topic})

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish the record in flight, commit and return (no waiting)."""
        self._stopping.set()

    async def stop(self) -> None:
        """Stop as :meth:`request_stop` does, and wait until :meth:`run` has returned."""
        self.request_stop()
        if self._running:
            await self._finished.wait()

    async def _open(self, stack: contextlib.AsyncExitStack) -> None:
        s = self.settings
        client = httpx.AsyncClient(transport=self._transport, timeout=s.timeout_s,
                                   follow_redirects=False)
        stack.push_async_callback(client.aclose)
        if s.dlq_topic is not None:
            self._producer = EventProducer(self.kafka)
            stack.push_async_callback(self._producer.stop)
            await self._producer.start()
        self._target = HttpTarget(client, s, metrics=self.metrics, sleep=self._sleep)
        options = self.kafka.client_options()
        # aiokafka's default rebalance timeout (the 10 s session timeout) is shorter than a
        # revoke may take to drain the records in flight; past it the broker drops the
        # member. A JoinGroup request may wait that long, so requests may too (as in Java).
        rebalance_ms = int(s.drain_timeout_s * 1000) + 10_000
        options["request_timeout_ms"] = max(options["request_timeout_ms"], rebalance_ms + 5_000)
        consumer = AIOKafkaConsumer(
            **options,
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=max_poll_interval_ms(s),
            rebalance_timeout_ms=rebalance_ms,
        )
        consumer.subscribe([s.topic], listener=_CommitOnRevoke(self))
        stack.push_async_callback(self._close_consumer, consumer)
        try:
            await consumer.start()
        except Exception as exc:
            if not is_kafka_error(exc):
                raise
            raise _consumer_error(exc) from exc
        self._consumer = consumer

    async def _close_consumer(self, consumer: Any) -> None:
        try:
            if self._consumer is not None:
                await self._commit()
        finally:
            self._consumer = None
            await consumer.stop()

    # consuming ---------------------------------------------------------------------

    async def _consume(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = await self._consumer.getmany(timeout_ms=POLL_TIMEOUT_MS,
                                                     max_records=self.settings.max_batch)
            except Exception as exc:
                if not is_kafka_error(exc):
                    raise
                raise _consumer_error(exc) from exc
            if batch:
                await self._run_batch(batch)

    async def _run_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        task = asyncio.create_task(self._process_batch(batch))
        self._batch = task
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # stopping: let the records in flight finish, within bounds
                await asyncio.wait({task}, timeout=self.settings.drain_timeout_s)
            if not task.done():
                log.warning("bridge drain timed out; records in flight stay uncommitted")
                task.cancel()
                await asyncio.wait({task})
            if not task.cancelled():
                task.result()  # a fatal error of the batch ends the run
        finally:
            stopping.cancel()
            if not task.done():  # run() itself was cancelled
                task.cancel()
            self._batch = None

    async def _process_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        generation = self._generation
        try:
            async with asyncio.TaskGroup() as group:
                for tp, records in batch.items():
                    group.create_task(self._process_partition(tp, records, generation))
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None

    async def _process_partition(self, tp: TopicPartition, records: list[Any],
                                 generation: int) -> None:
        for record in records:
            if self._stopping.is_set() or generation != self._generation:
                return  # stopping, or revoked after a drain timeout: leave the rest
            try:
                await self._handle(record)
            except DeliveryAbandoned:
                return  # stopping during a backoff: this record stays uncommitted
            if generation != self._generation:
                return  # the partition moved on while this record was in flight
            self._pending[tp] = record.offset + 1
            await self._commit([tp])

    async def _handle(self, record: Any) -> None:
        started = time.perf_counter()
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        try:
            event = Event.from_kafka(record.key, record.value, record.headers)
        except InvalidEvent as exc:
            result = DeliveryResult(delivered=False, attempts=0, error=exc)
            event_id = None
        else:
            assert self._target is not None
            result = await self._target.deliver(event)
            event_id = event.id
        if result.delivered:
            outcome = "delivered"
        else:
            await self._dead_letter(record, result)
            outcome = "dead_lettered"
        self.metrics.deliveries.labels(outcome=outcome).inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        log.info("event %s", outcome, extra={**where, "event_id": event_id,
                                             "attempts": result.attempts,
                                             "http_status": result.status})

    async def _dead_letter(self, record: Any, result: DeliveryResult) -> None:
        error = result.error or ConnectorError("delivery failed")
        where = f"{record.topic}/{record.partition}@{record.offset}"
        dlq_topic = self.settings.dlq_topic
        if self._producer is None or dlq_topic is None:
            raise DeadLetterError(f"event at {where} was not delivered ({error}) and no "
                                  "dlq_topic is configured; stopping without committing it")
        headers = dead_letter_headers(record.headers, topic=record.topic,
                                      partition=record.partition, offset=record.offset,
                                      error=error, attempts=result.attempts,
                                      status=result.status, target=self.settings.target_url)
        policy = policy_of(self.settings)
        for attempt in itertools.count(1):
            try:
                await self._producer.send_record(dlq_topic, key=record.key, value=record.value,
                                                 headers=headers)
                break
            except PublishError as exc:
                if not exc.retriable:
                    raise DeadLetterError(f"event at {where} could not be dead-lettered: "
                                          f"{exc}") from exc
                await self._sleep(backoff(attempt, policy, 1.0))
        self.metrics.dlq.inc()

    async def _sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds, or raise :class:`DeliveryAbandoned` as soon as stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        except TimeoutError:
            return
        raise DeliveryAbandoned("bridge is stopping")

    # offsets -----------------------------------------------------------------------

    async def _commit(self, tps: Iterable[TopicPartition] | None = None) -> None:
        """Commit the next offsets not yet committed; failures are retried on a later call."""
        wanted = self._pending if tps is None else {
            tp: self._pending[tp] for tp in tps if tp in self._pending}
        offsets = {tp: off for tp, off in wanted.items() if self._committed.get(tp) != off}
        if not offsets or self._consumer is None:
            return
        try:
            await self._consumer.commit(offsets)
        except Exception as exc:
            if not is_kafka_error(exc):
                raise
            log.warning("offset commit failed; will retry", extra={"error": type(exc).__name__})
            return
        for tp, off in offsets.items():
            self._committed[tp] = max(off, self._committed.get(tp, 0))

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Drain the batch in flight, then commit and forget the revoked partitions."""
        if not revoked:
            return
        batch = self._batch
        drained = batch is not None and not batch.done()
        if batch is not None and drained:
            await asyncio.wait({batch}, timeout=self.settings.drain_timeout_s)
        await self._commit(revoked)
        for tp in revoked:
            self._pending.pop(tp, None)
            self._committed.pop(tp, None)
        self._generation += 1
        log.info("partitions revoked", extra={"partitions": sorted(str(tp) for tp in revoked),
                                              "drained": drained})


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what the bridge has finished before its partitions move elsewhere."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._bridge.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})


def _consumer_error(exc: BaseException) -> ConnectorError:
    """Translate an aiokafka consumer error into the connectors' tree."""
    return ConnectorError(f"Kafka consumer failed: {exc}", retriable=decide(exc) is not
                          Decision.FAIL)
