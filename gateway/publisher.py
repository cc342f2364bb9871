"""Publisher: maps spooled messages and sends them to Kafka, marking rows only once acked.

Rows are taken in spool order, mapped to FHIR (in the mapping pool), routed to a topic
(``kafka.routes`` by message type and/or resource type, else ``kafka.topic``; optionally
the raw HL7 to ``kafka.raw_topic`` too) and handed to the producer in spool order, so the
records for one patient key keep their order in their partition. A row is marked
published only after the broker acknowledged every record made from it. If a record
fails, only the rows before it are marked; the failed row and everything after it are sent
again on the next pass. A consumer may then see a record twice, never out of order for
good; the stable event id and deterministic FHIR ids make the second copy harmless
(at-least-once delivery, README; deterministic ids, mappers/ids.py).

A record Kafka refuses for good (a non-retriable error: too large for ``max_request_size``
or the topic's ``max.message.bytes``, not authorised, ...) would fail the same way on
every pass and hold back every row behind it. Its row is marked ``failed`` with the reason
instead (logged without PHI, counted in ``hl7gw_publish_refused``, replayable once the
limit is raised), and the rows after it go on in order. (With ``raw_topic``, the row's
other record may have gone out already; a replay sends both again, with the same ids.)

Each batch is mapped with the profile set live when it is taken (``profiles``, a
``ProfileStore``): a reload applies from the next batch on, and a replayed row is mapped with
the profiles live at replay time, not the ones it was first published with.

Pacing. A pass takes up to ``batch_size`` rows, maps them, hands their records to the
producer and waits until every one is acked (or failed) before it marks them and takes the
next batch, so the rules above hold across passes. When a pass read fewer rows than
``batch_size``, the next one first waits ``linger`` seconds (20 ms), so that a steady stream
goes out in passes of many rows instead of one pass per handful: each pass has fixed costs on
the event loop that intake shares (a spool read, the hand-off to the mapping worker and
back, a produce request, the commit of the marks), and on a 2-core machine CPU is what
bounds the whole gateway. Mapping batch N+1 while batch N is sent would shorten the lag
but make passes smaller, so it would cost more CPU per message; the publish lag does not
need it (``hl7gw bench pipeline`` on a quiet 2-core machine: 2,500 msg/s published, p99
0.2-0.3 s from ACK to the row marked published).

While Kafka is down the rows wait in the spool (store-and-forward) and the publisher
retries with tenacity's jittered exponential backoff, capped at ``max_backoff`` seconds.
Whether Kafka answers is kept by a :class:`~gateway.kafka_watch.KafkaWatch`, which the
publisher tells about every ack and failure. ``hl7gw_spool_depth`` reads the spool's
pending count when scraped, so it is right even while no pass completes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

import mappers
from connectors import tracing
from connectors.errors import PublishError
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.kafka.producer import NotSent
from connectors.settings import KafkaSettings
from gateway import traces
from gateway.errors import SpoolError
from gateway.kafka_watch import KafkaWatch
from gateway.mapping import Mapped, MappingPool
from gateway.metrics import GatewayMetrics
from gateway.prepare import prepare
from gateway.spool import PendingRow, PublishedMark, Spool
from mappers.profiles import EMPTY_PROFILES, ProfileSet

if TYPE_CHECKING:
    from gateway.profiles import ProfileStore

log = logging.getLogger("hl7gw.publisher")

SendResult = tuple[int, int] | PublishError


def _event_type(kind: str, message_type: str) -> str:
    code, _, trigger = message_type.partition("^")
    return f"hl7gw.{kind}.{code.lower()}.{trigger.lower()}" if trigger else \
        f"hl7gw.{kind}.{code.lower()}"


def _time(row: PendingRow) -> str:
    return datetime.fromtimestamp(row.received_at, UTC).isoformat().replace("+00:00", "Z")


def fhir_event(mapped: Mapped, *, event_id: str, source: str, message_type: str,
               time: str | None, spool_row: str) -> Event:
    """The FHIR event of a mapped message; ids, types and field names only, no PHI.

    One function for both places a message is mapped, the gateway's publisher and
    ``hl7gw mapper`` (scale-out), so their events are the same bytes and headers.
    """
    assert mapped.payload is not None
    key = mapped.patient_key
    return Event(
        id=event_id,
        source=source,
        type=_event_type("fhir", message_type),
        subject=f"Patient/{key}" if key else None,
        time=time,
        key=key.encode() if key else None,
        data=mapped.payload,
        extensions={"hl7messagetype": message_type.replace("^", "_"),
                    "hl7spoolrow": spool_row, "hl7summary": mapped.summary},
    )


def event_for(row: PendingRow, mapped: Mapped, source: str) -> Event:
    """The CloudEvent for a mapped spool row."""
    return fhir_event(mapped, event_id=row.event_id, source=source,
                      message_type=row.message_type, time=_time(row), spool_row=str(row.id))


def raw_event_for(row: PendingRow, patient_key: str | None, source: str) -> Event:
    """The raw HL7 v2 message as a CloudEvent, keyed like its FHIR event.

    It carries what mapping it elsewhere needs (``hl7gw mapper``, docs/scale-out.md): the
    charset in ``content-type``, the time zone for timestamps without an offset
    (``hl7timezone``) and the id its FHIR event takes (``hl7eventid``).
    """
    return Event(
        id=f"{row.event_id}-v2",
        source=source,
        type=_event_type("v2", row.message_type),
        subject=f"Patient/{patient_key}" if patient_key else None,
        time=_time(row),
        key=patient_key.encode() if patient_key else None,
        data=row.raw,
        content_type=f"application/hl7-v2; charset={row.charset}",
        extensions={"hl7messagetype": row.message_type.replace("^", "_"),
                    "hl7spoolrow": str(row.id), "hl7eventid": row.event_id,
                    "hl7timezone": row.timezone},
    )


class Publisher:
    """Moves pending spool rows to Kafka; run() until cancelled."""

    def __init__(self, spool: Spool, producer: EventProducer, metrics: GatewayMetrics, *,
                 kafka: KafkaSettings, source: str, mapping: MappingPool | None = None,
                 batch_size: int = 200, max_backoff: float = 5.0,
                 profiles: ProfileStore | None = None, watch: KafkaWatch | None = None,
                 raw_topic: str | None = None, linger: float = 0.02) -> None:
        self.spool = spool
        # Scale-out (``scale_out.raw_topic``): publish the raw messages, map nothing here.
        self.raw_topic = raw_topic
        self.profiles = profiles
        self.mapping = mapping or MappingPool(workers=0)
        self.producer = producer
        self.metrics = metrics
        self.kafka = kafka
        self.source = source
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.linger = linger  # wait before a pass after a partial one (see Pacing)
        self._last_read = 0  # rows the last pass read
        self.watch = watch or KafkaWatch(producer, spool, metrics)
        self._wake = asyncio.Event()
        # Read when scraped: a value set after each pass went stale (0) while none finished.
        metrics.spool_depth.set_function(lambda: max(spool.pending_rows, 0))

    @property
    def connected(self) -> bool:
        """Whether Kafka answered last (see :class:`~gateway.kafka_watch.KafkaWatch`)."""
        return self.watch.up

    def wake(self) -> None:
        """Tell the publisher there is something new in the spool."""
        self._wake.set()

    async def run(self) -> None:
        """Publish forever: drain, then wait for a wake-up (or a periodic re-check)."""
        while True:
            self._wake.clear()
            sent = await self._drain_retrying()
            if sent == 0:
                await self._idle()
            elif self._last_read < self.batch_size and self.linger > 0:
                await asyncio.sleep(self.linger)

    async def _drain_retrying(self) -> int:
        retrying = AsyncRetrying(
            # SpoolError too: a transient disk error (full, I/O) must not end publishing
            # until a restart; the rows stay pending and the next pass tries again.
            retry=retry_if_exception_type((PublishError, SpoolError)),
            wait=wait_exponential_jitter(multiplier=0.5, max=self.max_backoff),
            before_sleep=self._before_retry, reraise=True)
        async for attempt in retrying:
            with attempt:
                return await self.drain_once()
        raise AssertionError("unreachable: tenacity retries until drain_once returns")

    def _before_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("publish failed; rows stay in the spool",
                    extra={"error_class": getattr(error, "cause", None) or
                           type(error).__name__,
                           "attempt": state.attempt_number,
                           "retry_in_s": round(state.upcoming_sleep, 2)})

    async def _idle(self) -> None:
        # A count, not the writer's tally: ``hl7gw replay`` may queue rows from outside.
        await self.spool.depth()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=1.0)
        except TimeoutError:
            pass

    async def drain_once(self) -> int:
        """Map and send one batch of pending rows; return how many rows were settled.

        Settled means published, or marked failed (unmappable, or refused by Kafka for
        good). A retriable failure is raised only when no row was settled; otherwise the
        rows before it are settled and the next pass starts at it.
        """
        rows = await self.spool.pending(limit=self.batch_size)
        self._last_read = len(rows)
        if not rows:
            return 0
        live = self.profiles.live() if self.profiles is not None else (0, EMPTY_PROFILES)
        if self.raw_topic is not None:
            return await self._publish_raw(rows, live[1], self.raw_topic)
        mapping_started = time.time_ns()
        maps = await self.mapping.map([(r.raw, r.charset, r.timezone, live[0]) for r in rows],
                                      live)
        if tracing.enabled():
            traces.trace_mapping(rows, maps, mapping_started)
        ready: list[tuple[PendingRow, Mapped]] = []
        for row, mapped in zip(rows, maps, strict=True):
            if mapped.payload is None:
                await self._failed(row, mapped)
            else:
                ready.append((row, mapped))
        sends: list[tuple[int, str, Event]] = []  # (index in ready, topic, event)
        for i, (row, mapped) in enumerate(ready):
            topic = self.kafka.topic_for(row.message_type, frozenset(mapped.resource_types))
            sends.append((i, topic, event_for(row, mapped, self.source)))
            if self.kafka.raw_topic:
                sends.append((i, self.kafka.raw_topic,
                              raw_event_for(row, mapped.patient_key, self.source)))
        if tracing.enabled():  # each record carries its span as the traceparent extension
            sends, spans = traces.trace_sends([row for row, _ in ready], sends)
            results = await self._send(sends)
            traces.end_sends(spans, results)
        else:
            results = await self._send(sends)
        marks, refused, failure = _settle(ready, sends, results)
        if marks:
            await self._mark(marks)
        for (row, mapped), topic, error in refused:
            await self._refused(row, mapped, topic, error)
        settled = len(marks) + len(refused) + (len(rows) - len(ready))
        if failure is not None:
            topic, error = failure
            if not isinstance(error, NotSent):
                self.metrics.publish_errors.labels(topic).inc()
                self.watch.failed(error.cause or type(error).__name__)
            if settled == 0:
                raise error
        return settled

    async def _publish_raw(self, rows: list[PendingRow], profiles: ProfileSet,
                           topic: str) -> int:
        """Scale-out: send each row's raw message to ``topic``, keyed by its patient's id.

        Nothing is mapped here; ``hl7gw mapper`` does it. The key is the id the mapping
        will give the Patient (``mappers.patient_key``, the cost of intake's check), so
        one patient's messages share a partition and are mapped in order.
        """
        ready: list[tuple[PendingRow, Mapped]] = []
        sends: list[tuple[int, str, Event]] = []
        for i, row in enumerate(rows):
            key, profile = _patient_key(row, profiles)
            ready.append((row, Mapped(row.raw, key, orjson.dumps(
                {"profile": profile, "mapped_by": "hl7gw mapper"}).decode())))
            sends.append((i, topic, raw_event_for(row, key, self.source)))
        if tracing.enabled():  # the mapper continues from the raw record's traceparent
            sends, spans = traces.trace_sends(rows, sends)
            results = await self._send(sends)
            traces.end_sends(spans, results)
        else:
            results = await self._send(sends)
        marks, refused, failure = _settle(ready, [(i, t, _as_fhir_id(e)) for i, t, e in sends],
                                          results)
        if marks:
            await self._mark(marks)
        for (row, mapped), refused_topic, error in refused:
            await self._refused(row, mapped, refused_topic, error)
        settled = len(marks) + len(refused)
        if failure is not None:
            failed_topic, error = failure
            if not isinstance(error, NotSent):
                self.metrics.publish_errors.labels(failed_topic).inc()
                self.watch.failed(error.cause or type(error).__name__)
            if settled == 0:
                raise error
        return settled

    async def _mark(self, marks: list[PublishedMark]) -> None:
        """Mark acked rows published, count them per topic, and note that Kafka answered."""
        await self.spool.mark_published(marks)
        for topic, count in Counter(mark.topic for mark in marks).items():
            self.metrics.published.labels(topic).inc(count)
        self.watch.succeeded()

    async def _send(self, sends: Sequence[tuple[int, str, Event]]) -> list[SendResult]:
        """Send per topic, in spool order within each; results in the order of ``sends``."""
        results: list[SendResult | None] = [None] * len(sends)
        for topic in dict.fromkeys(t for _, t, _ in sends):
            positions = [n for n, (_, t, _) in enumerate(sends) if t == topic]
            answers = await self.producer.send_batch(topic, [sends[n][2] for n in positions])
            for n, answer in zip(positions, answers, strict=True):
                results[n] = answer
        return [r for r in results if r is not None]

    async def _failed(self, row: PendingRow, mapped: Mapped) -> None:
        """A row the mapper refused after it was ACKed: kept as failed, never guessed."""
        self.metrics.mapping_failures.inc()
        log.warning("message could not be mapped after it was accepted",
                    extra={"row": row.id, "sender": row.sender, "control_id": row.control_id,
                           "message_type": row.message_type, "reason": mapped.error})
        await self.spool.mark_failed(row.id, mapped.error or "mapping failed", mapped.summary)

    async def _refused(self, row: PendingRow, mapped: Mapped, topic: str,
                       error: PublishError) -> None:
        """A row whose record Kafka refuses for good: failed with the reason, not retried."""
        cause = error.cause or type(error).__name__
        self.metrics.publish_refused.labels(topic, cause).inc()
        log.warning("kafka refused a record for good; row marked failed (replay it once "
                    "the cause is fixed)",
                    extra={"row": row.id, "sender": row.sender, "control_id": row.control_id,
                           "message_type": row.message_type, "topic": topic,
                           "error_class": cause, "bytes": len(mapped.payload or b"")})
        await self.spool.mark_failed(row.id, f"not published ({cause}): {error}",
                                     mapped.summary)


Refusal = tuple[tuple[PendingRow, Mapped], str, PublishError]


def _settle(ready: list[tuple[PendingRow, Mapped]], sends: Sequence[tuple[int, str, Event]],
            results: Sequence[SendResult],
            ) -> tuple[list[PublishedMark], list[Refusal], tuple[str, PublishError] | None]:
    """Walk the rows in order: published, refused for good, or stop at a retriable failure.

    Returns the marks of the published rows, the refused rows (topic and error of their
    first failed record) and the first retriable failure, if any; no row after it counts.
    """
    records: list[list[tuple[str, Event, SendResult]]] = [[] for _ in ready]
    for (i, topic, event), result in zip(sends, results, strict=True):
        records[i].append((topic, event, result))
    marks: list[PublishedMark] = []
    refused: list[Refusal] = []
    for (row, mapped), own in zip(ready, records, strict=True):
        errors = [(topic, r) for topic, _, r in own if isinstance(r, PublishError)]
        retry = next(((topic, e) for topic, e in errors if e.retriable), None)
        if retry is not None:
            return marks, refused, retry
        if errors:
            refused.append(((row, mapped), *errors[0]))
            continue
        for topic, event, result in own:
            if event.id == row.event_id and not isinstance(result, PublishError):
                marks.append(PublishedMark(row.id, topic, result[0], result[1],
                                           mapped.patient_key, mapped.summary))
    return marks, refused, None


def _patient_key(row: PendingRow, profiles: ProfileSet) -> tuple[str | None, str | None]:
    """The row's patient id as mapping will give it, and the profile's name; never raises.

    A message intake accepted has one; None sends it unkeyed (its mapping will fail and
    dead-letter it, as the in-process mapping would mark it failed).
    """
    profile = None
    try:
        prepared = prepare(row.raw, profiles=profiles, charset=row.charset,
                           timezone=row.timezone, errors="replace")
        profile = prepared.profile
        key = mappers.patient_key(prepared.text, default_tz=prepared.timezone,
                                  profile=profile)
    except Exception:  # noqa: BLE001 - keying is best effort; mapping reports the error
        key = None
    return key, profile.name if profile is not None else None


def _as_fhir_id(event: Event) -> Event:
    """``_settle`` marks a row by the record whose id is the row's event id: the raw
    record stands for it in scale-out mode (its id has ``-v2`` appended)."""
    return replace(event, id=event.extensions["hl7eventid"])
