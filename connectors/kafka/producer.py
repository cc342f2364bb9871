"""A thin, idempotent Kafka producer that sends :class:`Event` records and waits for the ack.

aiokafka's errors are translated at one boundary (:func:`connectors.kafka.errors.kafka_errors`);
what leaves this module is a :class:`~connectors.errors.PublishError` whose ``retriable``
says whether the same record may be sent again. An error that leaves the idempotent
producer's state broken (``client_broken``) replaces the producer before it is raised.

aiokafka keeps retrying a record whose partition leader is known but unreachable, without
a deadline, and its ``stop()`` waits for every queued record: with the broker down it would
never return. :meth:`EventProducer.stop` therefore takes a deadline, past which the queued
records are failed and the client closed (the gateway's rows stay in its spool), and
:meth:`EventProducer.ping` asks the cluster for metadata so that a caller can tell "the
broker is down" from "the broker is slow".

Batches. aiokafka sends one request at a time to each broker, with at most one batch per
partition in it, and a record waits while its partition's batch is full. With aiokafka's
16 KiB default a request carried two or three 6 KB FHIR Bundles per partition, and the
gateway's publisher spent 160 ms per 200 records waiting for round trips (900 msg/s
published against 2,950 ACKed). Batches may therefore grow to ``max_request_size``, the
size the operator has said Kafka accepts (docs/configuration.md, "Message size").

A topic whose ``max.message.bytes`` is below that refuses a whole batch as too large, and
every record in it would look too large. So a size refusal of a record smaller than the
batch size does not stand: the producer is recreated with aiokafka's 16 KiB batches (the
old behaviour: a record larger than that always travels alone, so a refusal is its own)
and that record and every later one of the call come back as :class:`ResendAfter`,
retriable, to be sent again in order (a later one may have been acked meanwhile: it is
published twice, the second time in order). A warning tells the operator to line the
limits up (docs/configuration.md, "Message size").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from connectors.errors import PublishError
from connectors.events import Event
from connectors.kafka.errors import (
    KafkaClientError,
    KafkaPublishError,
    kafka_errors,
)
from connectors.kafka.partitioner import CachedPartitioner
from connectors.settings import KafkaSettings

log = logging.getLogger(__name__)

CLOSE_AFTER_ABORT_S = 5.0  # closing sockets once the queued records were failed
BATCH_FLOOR = 16384  # aiokafka's default batch size: what the producer falls back to
# Refusals that may be the batch's size rather than the record's (see the module docstring).
_SIZE_CAUSES = frozenset({"MessageSizeTooLargeError", "RecordListTooLargeError",
                          "RecordTooLargeError"})


class NotSent(PublishError):
    """An event of a batch not sent because an earlier one failed (sent again later)."""

    def __init__(self) -> None:
        super().__init__("not sent: an earlier event of the batch failed", retriable=True)


class ResendAfter(NotSent):
    """An event to send again: its batch was refused as too large for its topic, or it
    came after such an event (sent again after it, to keep their order)."""

    def __init__(self) -> None:
        PublishError.__init__(self, "sent again: a batch was too large for its topic; "
                                    "the producer's batches were made smaller",
                              retriable=True)


class EventProducer:
    """Sends events to Kafka with ``acks=all`` and idempotence; one boundary for its errors."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._producer: Any = None
        self._generation = 0  # bumped on every (re)creation, so racing failures recreate once
        self._lock: asyncio.Lock | None = None
        self._closed = False
        self._batch_size = settings.max_request_size  # BATCH_FLOOR after a batch refusal

    @property
    def settings(self) -> KafkaSettings:
        """The settings this producer was built with."""
        return self._settings

    @property
    def batch_size(self) -> int:
        """The largest batch of records per partition the producer builds now, in bytes."""
        return self._batch_size

    @property
    def started(self) -> bool:
        """True once :meth:`start` succeeded and until :meth:`stop`."""
        return self._producer is not None and not self._closed

    async def start(self) -> None:
        """Connect to the cluster and obtain a producer id; raises :class:`PublishError`."""
        if self._producer is not None:
            return
        self._closed = False
        self._lock = asyncio.Lock()
        await self._create()

    async def stop(self, flush_within: float | None = None) -> None:
        """Flush what is in flight and close; safe to call twice or before ``start``.

        With ``flush_within`` (seconds), records still unacknowledged by then are failed
        (their senders get a retriable :class:`PublishError`) and the client is closed.
        """
        self._closed = True
        producer, self._producer = self._producer, None
        if producer is not None:
            await _close(producer, flush_within)

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def ping(self, within: float) -> None:
        """Ask the cluster for its metadata, waiting ``within`` seconds at most.

        Raises :class:`KafkaClientError` (retriable) when no broker answered; a producer
        that is not started counts as unreachable.
        """
        producer = self._producer
        if producer is None:
            raise KafkaClientError("Kafka producer is not connected", retriable=True,
                                   cause="NotStarted")
        try:
            with kafka_errors("to answer a metadata request", KafkaClientError):
                await asyncio.wait_for(producer.client.fetch_all_metadata(), within)
        except TimeoutError as exc:
            raise KafkaClientError(f"Kafka did not answer a metadata request within "
                                   f"{within:g}s", retriable=True,
                                   cause="TimeoutError") from exc

    async def send(self, topic: str, event: Event) -> tuple[int, int]:
        """Publish ``event`` keyed by ``event.key``; returns (partition, offset) once acked."""
        return await self.send_record(topic, key=event.key, value=event.data,
                                      headers=event.kafka_headers())

    async def send_record(self, topic: str, *, key: bytes | None, value: bytes | None,
                          headers: Sequence[tuple[str, bytes]]) -> tuple[int, int]:
        """Publish raw key/value/headers (the bridge's dead letters); same guarantees."""
        producer = await self._current()
        async with self._sending(topic, self._generation):
            meta = await producer.send_and_wait(topic, value=value, key=key,
                                                headers=list(headers))
        return int(meta.partition), int(meta.offset)

    async def send_batch(self, topic: str, events: Sequence[Event]
                         ) -> list[tuple[int, int] | PublishError]:
        """Publish many events pipelined; one result per event, in order, once all settled.

        Each result is (partition, offset) or the :class:`PublishError` for that event.
        Once one event cannot be queued, the later ones are not sent (so a retry keeps
        their order) and get a retriable error saying so.

        The per-record path is kept lean: the gateway publishes thousands of records a
        second on the event loop that also answers MLLP. Queueing runs inside one error
        boundary (it stops at the first refusal anyway), and the acks are awaited together
        with ``asyncio.wait``, which, like a shield, never cancels aiokafka's futures when
        the caller is cancelled; only a failed record goes through the boundary again.
        """
        producer = await self._current()
        generation = self._generation
        queued: list[asyncio.Future[Any]] = []
        refused: PublishError | None = None
        try:
            async with self._sending(topic, generation):
                for event in events:
                    queued.append(await producer.send(topic, value=event.data, key=event.key,
                                                       headers=event.kafka_headers()))
        except PublishError as error:
            refused = error
        if queued:
            await asyncio.wait(queued)
        results: list[tuple[int, int] | PublishError] = []
        for pending in queued:
            if pending.cancelled() or pending.exception() is not None:
                results.append(await self._failed(pending, topic, generation))
            else:
                meta = pending.result()
                results.append((int(meta.partition), int(meta.offset)))
        batch_refused = self._batch_refusal(events, results)
        if batch_refused is not None:
            await self._shrink(generation)
            return [*results[:batch_refused],
                    *(ResendAfter() for _ in events[batch_refused:])]
        if refused is not None:
            results.append(refused)
        results.extend(NotSent() for _ in range(len(events) - len(results)))
        return results

    def _batch_refusal(self, events: Sequence[Event],
                       results: Sequence[tuple[int, int] | PublishError]) -> int | None:
        """The first acked-stage size refusal that may be its batch's fault, if any.

        A record smaller than the batch size may have shared its batch; one at least as
        large travelled alone, so its refusal is its own. At the floor nothing is retried.
        """
        if self._batch_size <= BATCH_FLOOR:
            return None
        for n, result in enumerate(results):
            if isinstance(result, PublishError) and result.cause in _SIZE_CAUSES \
                    and _record_size(events[n]) < self._batch_size:
                return n
        return None

    async def _shrink(self, generation: int) -> None:
        """Fall back to :data:`BATCH_FLOOR` batches: recreate the producer with them."""
        assert self._lock is not None
        async with self._lock:
            if self._closed or generation != self._generation:
                return  # another call shrank (or recreated) it already
            self._batch_size = BATCH_FLOOR
            log.warning("kafka refused a batch as too large: a topic's max.message.bytes is "
                        "below kafka.max_request_size, so the producer falls back to small "
                        "batches and publishes slower until restarted; raise the topic's "
                        "limit, or lower kafka.max_request_size to it",
                        extra={"batch_bytes": self._batch_size})
            await self._replace()

    async def _failed(self, pending: asyncio.Future[Any], topic: str, generation: int
                      ) -> PublishError:
        """The error of a settled record that failed, through the boundary, returned."""
        try:
            async with self._sending(topic, generation):
                pending.result()
        except PublishError as error:
            return error
        raise AssertionError("unreachable: the record's future holds an error")

    @contextlib.asynccontextmanager
    async def _sending(self, topic: str, generation: int) -> AsyncIterator[None]:
        """The error boundary of one send; replaces the producer when its state broke."""
        try:
            with kafka_errors(f"to acknowledge a record for topic {topic!r}"):
                yield
        except KafkaPublishError as error:
            log.warning("kafka send failed", extra={"topic": topic, "error": error.cause,
                                                    "retriable": error.retriable})
            if error.client_broken:
                await self._recreate(generation)
            raise

    async def _current(self) -> Any:
        """The live producer, recreating one that an earlier fatal error left behind."""
        if self._producer is None and not self._closed and self._lock is not None:
            await self._recreate(self._generation)
        if self._producer is None:
            if self._closed or self._lock is None:
                raise PublishError("producer is not started", retriable=False)
            raise PublishError("Kafka producer is unavailable", retriable=True)
        return self._producer

    async def _create(self) -> None:
        s = self._settings
        producer = AIOKafkaProducer(
            **s.client_options(),
            acks="all",
            enable_idempotence=True,
            linger_ms=s.linger_ms,
            max_request_size=s.max_request_size,
            max_batch_size=self._batch_size,  # see "Batches" in the module docstring
            partitioner=CachedPartitioner(),  # Kafka's default, hashes remembered
        )
        try:
            with kafka_errors("to start the producer"):
                await producer.start()
        except BaseException:
            # Failed or cancelled mid-start (the gateway stopping while Kafka is slow):
            # close the half-started client, or it leaks its connections and warns.
            await producer.stop()
            raise
        self._producer = producer
        self._generation += 1

    async def _recreate(self, generation: int) -> None:
        """Replace a producer whose state is broken, once per generation, unless stopped."""
        assert self._lock is not None
        async with self._lock:
            if self._closed or generation != self._generation:
                return
            log.warning("recreating kafka producer after a fatal producer error")
            await self._replace()

    async def _replace(self) -> None:
        """Close the producer and make a new one (the caller holds the lock); if that
        fails, the next send tries again."""
        old, self._producer = self._producer, None
        if old is not None:
            # A wedged producer may fail to close cleanly, or never finish flushing.
            with contextlib.suppress(PublishError):
                await _close(old, self._settings.request_timeout_ms / 1000)
        try:
            await self._create()
        except PublishError:
            log.warning("kafka producer could not be recreated; will retry on next send")
            self._generation += 1


def _record_size(event: Event) -> int:
    """About what a record takes in its batch: value, key and headers."""
    return len(event.data) + len(event.key or b"") + sum(
        len(name) + len(value) for name, value in event.kafka_headers())


async def _close(producer: Any, within: float | None) -> None:
    """``producer.stop()``, abandoning what is still queued after ``within`` seconds."""
    stopping = asyncio.ensure_future(producer.stop())
    done, _ = await asyncio.wait({stopping}, timeout=within)
    if not done:
        log.warning("kafka producer did not flush within the deadline; abandoning "
                    "unacknowledged records", extra={"within_s": within})
        # aiokafka's stop() waits for every queued batch, and a batch for an unreachable
        # leader is retried forever; failing them lets stop() go on to close the sockets.
        accumulator = getattr(producer, "_message_accumulator", None)
        if accumulator is not None:
            # An aiokafka error, so that the senders' boundary turns it into a retriable one.
            accumulator.fail_all(KafkaTimeoutError("producer stopped before Kafka "
                                                   "acknowledged the record"))
        done, _ = await asyncio.wait({stopping}, timeout=CLOSE_AFTER_ABORT_S)
        if not done:
            stopping.cancel()
    with contextlib.suppress(asyncio.CancelledError), kafka_errors("to close the producer"):
        await stopping
