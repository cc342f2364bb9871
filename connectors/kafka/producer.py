"""A thin, idempotent Kafka producer that sends :class:`Event` records and waits for the ack."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from connectors.errors import PublishError
from connectors.events import Event
from connectors.kafka.errors import Decision, decide, is_kafka_error, publish_error
from connectors.settings import KafkaSettings

log = logging.getLogger(__name__)


class EventProducer:
    """Sends events to Kafka with ``acks=all`` and idempotence; one boundary for its errors."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._producer: Any = None
        self._generation = 0  # bumped on every (re)creation, so racing failures recreate once
        self._lock: asyncio.Lock | None = None
        self._closed = False

    @property
    def settings(self) -> KafkaSettings:
        """The settings this producer was built with."""
        return self._settings

    async def start(self) -> None:
        """Connect to the cluster and obtain a producer id; raises :class:`PublishError`."""
        if self._producer is not None:
            return
        self._closed = False
        self._lock = asyncio.Lock()
        await self._create()

    async def stop(self) -> None:
        """Flush what is in flight and close; safe to call twice or before ``start``."""
        self._closed = True
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def send(self, topic: str, event: Event) -> tuple[int, int]:
        """Publish ``event`` keyed by ``event.key``; returns (partition, offset) once acked."""
        return await self.send_record(topic, key=event.key, value=event.data,
                                      headers=event.kafka_headers())

    async def send_record(self, topic: str, *, key: bytes | None, value: bytes | None,
                          headers: Sequence[tuple[str, bytes]]) -> tuple[int, int]:
        """Publish raw key/value/headers (the bridge's dead letters); same guarantees."""
        producer = await self._current()
        generation = self._generation
        try:
            meta = await producer.send_and_wait(topic, value=value, key=key,
                                                headers=list(headers))
        except Exception as exc:
            if not is_kafka_error(exc):
                raise
            raise await self._failed(exc, topic, generation) from exc
        return int(meta.partition), int(meta.offset)

    async def send_batch(self, topic: str, events: Sequence[Event]
                         ) -> list[tuple[int, int] | PublishError]:
        """Publish many events pipelined; one result per event, in order, once all settled.

        Each result is (partition, offset) or the :class:`PublishError` for that event.
        Once one event cannot be queued, the later ones are not sent (so a retry keeps
        their order) and get a retriable error saying so.
        """
        producer = await self._current()
        generation = self._generation
        futures: list[asyncio.Future[Any]] = []
        refused: BaseException | None = None
        for event in events:
            try:
                futures.append(await producer.send(topic, value=event.data, key=event.key,
                                                   headers=event.kafka_headers()))
            except Exception as exc:
                if not is_kafka_error(exc):
                    raise
                refused = exc
                break
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        results: list[tuple[int, int] | PublishError] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                if not is_kafka_error(outcome):
                    raise outcome
                results.append(await self._failed(outcome, topic, generation))
            else:
                results.append((int(outcome.partition), int(outcome.offset)))
        if refused is not None:
            results.append(await self._failed(refused, topic, generation))
        skipped = PublishError("not sent: an earlier event of the batch failed",
                               retriable=True)
        results.extend(skipped for _ in range(len(events) - len(results)))
        return results

    async def _failed(self, exc: BaseException, topic: str, generation: int) -> PublishError:
        """Translate a send failure, replacing the producer first when its state is broken."""
        error = publish_error(exc, topic)
        log.warning("kafka send failed", extra={"topic": topic, "error": error.cause,
                                                "retriable": error.retriable})
        if decide(exc) is Decision.RECREATE:
            await self._recreate(generation)
        return error

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
        )
        try:
            await producer.start()
        except asyncio.CancelledError:
            # Cancelled mid-start (the gateway stopping while Kafka is slow): close the
            # half-started client, or it leaks its connections and warns when collected.
            await producer.stop()
            raise
        except Exception as exc:
            await producer.stop()
            if not is_kafka_error(exc):
                raise
            raise publish_error(exc, "(start)") from exc
        self._producer = producer
        self._generation += 1

    async def _recreate(self, generation: int) -> None:
        """Replace a producer whose state is broken, once per generation, unless stopped."""
        assert self._lock is not None
        async with self._lock:
            if self._closed or generation != self._generation:
                return
            old, self._producer = self._producer, None
            log.warning("recreating kafka producer after a fatal producer error")
            if old is not None:
                try:
                    await old.stop()
                except Exception as exc:  # a wedged producer may fail to close cleanly
                    if not is_kafka_error(exc):
                        raise
            try:
                await self._create()
            except PublishError:
                log.warning("kafka producer could not be recreated; will retry on next send")
                self._generation += 1
