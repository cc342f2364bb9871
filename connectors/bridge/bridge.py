"""The bridge: a Kafka consumer-group member that delivers each event to a function target.

Each assigned partition has a lane: a bounded queue of fetched records and one task that
handles them strictly in order: one is delivered (or dead-lettered) before the next is
tried, and its offset + 1 is committed only then, so committed offsets are always
contiguous. Lanes run concurrently, so a partition stuck in retries does not hold up the
others; when a lane holds ``queue_size`` records its partition is paused (no more fetches)
and it is resumed once the lane has worked down to half of that. The lag of each partition
(high watermark minus the next offset to commit) is the ``hl7gw_bridge_lag`` gauge. Delivery is
at-least-once: after a crash or a rebalance a record may reach the target again, with the
same ``Idempotency-Key`` (the CloudEvent id) so the target can drop the repeat.

A function may answer with a FHIR result for the EHR (200/201 with a FHIR resource): the
bridge publishes it to ``outbound_topic`` (:mod:`connectors.results`) before it counts the
event delivered, so an event whose offset is committed has its result on Kafka. A repeat
after a crash publishes the result again under the same id (the function app answers a
repeated id with its first result); the gateway's outbound queue takes it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry

from connectors import tracing
from connectors.bridge.auth import build_auth
from connectors.bridge.delivery import (
    DeliveryAbandoned,
    DeliveryResult,
    HttpTarget,
    max_poll_interval_ms,
)
from connectors.bridge.lane import Lane
from connectors.bridge.metrics import BridgeMetrics, metrics_for
from connectors.bridge.outputs import Outputs
from connectors.errors import InvalidEvent
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.kafka.errors import KafkaClientError, kafka_errors
from connectors.settings import BridgeSettings, KafkaSettings

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 250  # how long one getmany waits; bounds how quickly stop() is noticed
LAG_REFRESH_S = 1.0  # how often the lag of paused partitions is asked from the broker
BROKER_PROBE_S = 5.0  # /readyz asks the broker for metadata at most this often
BROKER_PROBE_TIMEOUT_S = 3.0


class Bridge:
    """Consumes ``settings.topic`` in group ``settings.group_id`` and POSTs each event."""

    def __init__(self, settings: BridgeSettings, kafka: KafkaSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.kafka = kafka
        self.registry: CollectorRegistry = REGISTRY if registry is None else registry
        self.metrics: BridgeMetrics = metrics_for(self.registry)
        self._transport = transport
        self._stopping = asyncio.Event()
        self._finished = asyncio.Event()
        self._running = False
        self._consumer: Any = None
        self._producer: EventProducer | None = None
        self._out = Outputs(settings, None, self.metrics, self._sleep)  # set again by _open
        self._target: HttpTarget | None = None
        self._lanes: dict[TopicPartition, Lane] = {}
        self._failure: BaseException | None = None
        self._lag_refreshed = 0.0
        self._pending: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._committed: dict[TopicPartition, int] = {}
        self._last_commit: dict[TopicPartition, float] = {}
        self._assigned: set[TopicPartition] | None = None  # None: not yet in the group
        self._broker: tuple[float, bool, str | None] = (0.0, False, "not started")

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

    def queue_depths(self) -> dict[TopicPartition, int]:
        """Records fetched and not yet finished, per partition (for metrics and tests)."""
        return {tp: len(lane.queue) for tp, lane in self._lanes.items()}

    def paused(self) -> set[TopicPartition]:
        """Partitions paused because their queue is full."""
        return {tp for tp, lane in self._lanes.items() if lane.paused}

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details) for ``/readyz``: in the group, and the broker answers.

        Ready once the consumer has joined its group and holds an assignment (which may
        be empty: with more bridges than partitions the extra ones stand by, ready to take
        over), and the broker answered a metadata request (asked at most every
        ``BROKER_PROBE_S``). Not ready while starting, during a rebalance, or while no
        broker answers: no event is then being delivered by this process.
        """
        broker_ok, broker_error = await self._probe_broker()
        assigned = self._assigned
        details: dict[str, Any] = {
            "group": "joined" if assigned is not None else "joining",
            "partitions": sorted(f"{tp.topic}-{tp.partition}" for tp in assigned or ()),
            "kafka": "connected" if broker_ok else "unreachable",
        }
        if broker_error is not None:
            details["kafka_detail"] = broker_error
        return assigned is not None and broker_ok, details

    async def _probe_broker(self) -> tuple[bool, str | None]:
        at, ok, error = self._broker
        consumer = self._consumer
        if consumer is None:
            return False, "consumer not started"
        if time.monotonic() - at < BROKER_PROBE_S:
            return ok, error
        try:
            await asyncio.wait_for(consumer.topics(), BROKER_PROBE_TIMEOUT_S)
            ok, error = True, None
        except TimeoutError:
            ok, error = False, f"no metadata answer within {BROKER_PROBE_TIMEOUT_S:g} s"
        except Exception as exc:  # noqa: BLE001 - reported by /readyz, not raised
            ok, error = False, type(exc).__name__
        self._broker = (time.monotonic(), ok, error)
        return ok, error

    def _assignment_changed(self, assigned: set[TopicPartition] | None) -> None:
        """Called with the new assignment, or None when a rebalance takes partitions away."""
        self._assigned = None if assigned is None else set(assigned)
        self.metrics.assigned.set(len(assigned or ()))

    async def _open(self, stack: contextlib.AsyncExitStack) -> None:
        s = self.settings
        client = httpx.AsyncClient(transport=self._transport, timeout=s.timeout_s,
                                   auth=build_auth(s.auth), follow_redirects=False)
        stack.push_async_callback(client.aclose)
        if s.dlq_topic is not None or s.outbound_topic is not None:
            # Each send is awaited before the lane goes on, so lingering to batch records
            # only adds latency (5 ms per result by default): send at once.
            self._producer = EventProducer(self.kafka.model_copy(update={"linger_ms": 0}))
            # Bounded: with Kafka down, aiokafka's flush would wait for the broker forever.
            stack.push_async_callback(self._producer.stop, s.drain_timeout_s)
            await self._producer.start()
        self._out = Outputs(s, self._producer, self.metrics, self._sleep)
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
        with kafka_errors("to start the consumer", KafkaClientError):
            await consumer.start()
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
        try:
            while not self._stopping.is_set():
                with kafka_errors("to fetch records", KafkaClientError):
                    batch = await self._consumer.getmany(timeout_ms=POLL_TIMEOUT_MS,
                                                         max_records=self.settings.max_batch)
                for tp, records in batch.items():
                    self._enqueue(tp, records)
                await self._refresh_paused_lag()
        except asyncio.CancelledError:
            for lane in self._lanes.values():  # run() itself was cancelled: no draining
                if lane.task is not None:
                    lane.task.cancel()
            raise
        finally:
            await self._finish(list(self._lanes.values()))
        if self._failure is not None:
            raise self._failure

    def _enqueue(self, tp: TopicPartition, records: list[Any]) -> None:
        """Queue records for their partition's lane; pause the partition once it is full."""
        lane = self._lanes.get(tp)
        if lane is None:
            lane = self._lanes[tp] = Lane(tp)
            lane.task = asyncio.create_task(self._work(lane), name=f"bridge-lane-{tp}")
        lane.queue.extend(records)
        lane.wakeup.set()
        self._observe_lag(tp, lane.queue[0].offset)  # the oldest record not yet done
        if not lane.paused and len(lane.queue) >= self.settings.queue_size:
            self._consumer.pause(tp)
            lane.paused = True
            self.metrics.pauses.inc()

    async def _work(self, lane: Lane) -> None:
        """Deliver one partition's records strictly in order; commit when caught up or due.

        Committing after every record cost a broker round trip per event; committing when
        the queue runs empty (or every ``commit_interval_s`` while busy) keeps the promise
        that a committed offset was delivered, at a fraction of the cost.
        """
        try:
            while await lane.next_ready(self._stopping):
                record = lane.queue[0]
                try:
                    await self._handle(record)
                except DeliveryAbandoned:
                    return  # stopping during a backoff: this record stays uncommitted
                lane.queue.popleft()
                self._pending[lane.tp] = record.offset + 1
                self._observe_lag(lane.tp, record.offset + 1)
                if lane.paused and len(lane.queue) <= self.settings.queue_size // 2:
                    self._resume(lane)
                if not lane.queue or self._commit_due(lane.tp):
                    await self._commit([lane.tp])
        except Exception as exc:  # noqa: BLE001 - a fatal error ends run(), uncommitted
            if self._failure is None:
                self._failure = exc
            self._stopping.set()

    def _resume(self, lane: Lane) -> None:
        if self._consumer is not None and lane.tp in self._consumer.assignment():
            self._consumer.resume(lane.tp)
        lane.paused = False

    async def _finish(self, lanes: list[Lane]) -> bool:
        """Let the lanes finish their record in flight (within bounds); True if all did."""
        for lane in lanes:
            lane.closing = True
            lane.wakeup.set()
        tasks = {lane.task for lane in lanes if lane.task is not None and not lane.task.done()}
        if not tasks:
            return True
        _, late = await asyncio.wait(tasks, timeout=self.settings.drain_timeout_s)
        if late:
            log.warning("bridge drain timed out; records in flight stay uncommitted")
            for task in late:
                task.cancel()
            await asyncio.wait(late)
        return not late

    async def _refresh_paused_lag(self) -> None:
        """Paused partitions are not fetched, so their high watermark is asked for instead."""
        now = time.monotonic()
        paused = {tp: lane.queue[0].offset for tp, lane in self._lanes.items()
                  if lane.paused and lane.queue}
        if not paused or now - self._lag_refreshed < LAG_REFRESH_S:
            return
        self._lag_refreshed = now
        try:
            with kafka_errors("to report end offsets", KafkaClientError):
                ends = await self._consumer.end_offsets(list(paused))
        except KafkaClientError:
            return  # the next refresh will try again
        for tp, end in ends.items():
            self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                max(end - paused[tp], 0))

    def _observe_lag(self, tp: TopicPartition, next_offset: int) -> None:
        highwater = self._consumer.highwater(tp) if self._consumer is not None else None
        if highwater is not None:
            self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                max(highwater - next_offset, 0))

    async def _handle(self, record: Any) -> None:
        started = time.perf_counter()
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        try:
            event = Event.from_kafka(record.key, record.value, record.headers)
        except InvalidEvent as exc:
            result = DeliveryResult(delivered=False, attempts=0, error=exc)
            event_id = None
        else:
            result = await (self._deliver_traced(event, record) if tracing.enabled()
                            else self._deliver(event))
            event_id = event.id
            if result.delivered and result.result is not None:
                await self._out.publish_result(event, result.result)
        if result.delivered:
            outcome = "delivered"
        else:
            await self._out.dead_letter(record, result)
            outcome = "dead_lettered"
        self.metrics.deliveries.labels(outcome=outcome).inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        log.info("event %s", outcome, extra={**where, "event_id": event_id,
                                             "attempts": result.attempts,
                                             "http_status": result.status})

    async def _deliver(self, event: Event) -> DeliveryResult:
        assert self._target is not None
        return await self._target.deliver(event)

    async def _deliver_traced(self, event: Event, record: Any) -> DeliveryResult:
        """Delivery in a span continuing the record's trace (its ``traceparent`` extension);
        the POST carries this span's context (``connectors.tracing``)."""
        with tracing.span("hl7gw.bridge.deliver", kind="consumer",
                          parent=event.extensions.get(tracing.TRACEPARENT),
                          attributes={"messaging.system": "kafka",
                                      "messaging.operation.type": "process",
                                      "messaging.destination.name": record.topic,
                                      "messaging.destination.partition.id": str(record.partition),
                                      "messaging.kafka.offset": record.offset,
                                      "messaging.consumer.group.name": self.settings.group_id,
                                      "cloudevents.event_id": event.id,
                                      "cloudevents.event_type": event.type}) as current:
            result = await self._deliver(event)
            tracing.set_attributes(current, {
                "hl7gw.attempts": result.attempts, "http.response.status_code": result.status,
                "hl7gw.outcome": "delivered" if result.delivered else "dead_lettered"})
            if not result.delivered:
                tracing.fail(current, result.error or "not delivered")
            return result

    async def _sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds, or raise :class:`DeliveryAbandoned` as soon as stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        except TimeoutError:
            return
        raise DeliveryAbandoned("bridge is stopping")

    # offsets -----------------------------------------------------------------------

    def _commit_due(self, tp: TopicPartition) -> bool:
        now = asyncio.get_running_loop().time()
        if now - self._last_commit.get(tp, 0.0) >= self.settings.commit_interval_s:
            self._last_commit[tp] = now
            return True
        return False

    async def _commit(self, tps: Iterable[TopicPartition] | None = None) -> None:
        """Commit the next offsets not yet committed; failures are retried on a later call."""
        wanted = self._pending if tps is None else {
            tp: self._pending[tp] for tp in tps if tp in self._pending}
        offsets = {tp: off for tp, off in wanted.items() if self._committed.get(tp) != off}
        if not offsets or self._consumer is None:
            return
        try:
            with kafka_errors("to commit offsets", KafkaClientError):
                await self._consumer.commit(offsets)
        except KafkaClientError as exc:
            log.warning("offset commit failed; will retry", extra={"error": exc.cause})
            return
        for tp, off in offsets.items():
            self._committed[tp] = max(off, self._committed.get(tp, 0))

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Drain the revoked partitions' records in flight, then commit and forget them."""
        if not revoked:
            return
        lanes = [self._lanes.pop(tp) for tp in revoked if tp in self._lanes]
        drained = await self._finish(lanes)
        await self._commit(revoked)
        for tp in revoked:
            self._pending.pop(tp, None)
            self._committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                self.metrics.lag.remove(tp.topic, str(tp.partition))
        log.info("partitions revoked", extra={"partitions": sorted(str(tp) for tp in revoked),
                                              "drained": drained})


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what the bridge has finished before its partitions move elsewhere."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._bridge._assignment_changed(None)
        await self._bridge.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._bridge._assignment_changed(assigned)
        log.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})

