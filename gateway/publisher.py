"""Publisher: drains the spool to Kafka, in arrival order, marking rows only once acked.

Rows are sent in batches: each batch is handed to the producer in spool order (so records
for one patient key keep their order in their partition) and the rows are marked published
only after the broker acknowledged them. If a record in a batch fails, only the rows
before it are marked; the failed row and everything after it are sent again on the next
pass. A consumer may then see a record twice, never out of order for good; the stable
event id and deterministic FHIR ids make the second copy harmless (DESIGN.md 3 and 4).

While Kafka is down the rows simply wait in the spool (store-and-forward) and the
publisher retries with a capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from connectors.errors import PublishError
from connectors.events import Event
from connectors.kafka import EventProducer
from gateway.mapping import Mapped, MappingPool
from gateway.metrics import GatewayMetrics
from gateway.spool import PendingRow, PublishedMark, Spool

log = logging.getLogger("hl7gw.publisher")


def event_for(row: PendingRow, mapped: Mapped, source: str) -> Event:
    """The CloudEvent for a mapped spool row; ids, types and field names only, no PHI."""
    assert mapped.payload is not None
    code, _, trigger = row.message_type.partition("^")
    key = mapped.patient_key
    return Event(
        id=row.event_id,
        source=source,
        type=f"hl7gw.fhir.{code.lower()}.{trigger.lower()}" if trigger else
        f"hl7gw.fhir.{code.lower()}",
        subject=f"Patient/{key}" if key else None,
        time=datetime.fromtimestamp(row.received_at, UTC).isoformat().replace("+00:00", "Z"),
        key=key.encode() if key else None,
        data=mapped.payload,
        extensions={"hl7messagetype": row.message_type.replace("^", "_"),
                    "hl7spoolrow": str(row.id), "hl7summary": mapped.summary},
    )


class Publisher:
    """Moves pending spool rows to one Kafka topic; run() until cancelled."""

    def __init__(self, spool: Spool, producer: EventProducer, metrics: GatewayMetrics, *,
                 topic: str, source: str, mapping: MappingPool | None = None,
                 batch_size: int = 200, max_backoff: float = 5.0) -> None:
        self.spool = spool
        self.mapping = mapping or MappingPool(workers=0)
        self.producer = producer
        self.metrics = metrics
        self.topic = topic
        self.source = source
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self._wake = asyncio.Event()
        self.connected = False

    def wake(self) -> None:
        """Tell the publisher there is something new in the spool."""
        self._wake.set()

    async def run(self) -> None:
        """Publish forever: drain, then wait for a wake-up (or a periodic re-check)."""
        backoff = 0.5
        while True:
            self._wake.clear()
            try:
                sent = await self.drain_once()
            except PublishError as exc:
                self.connected = False
                log.warning("publish failed; rows stay in the spool",
                            extra={"topic": self.topic, "error_class": type(exc).__name__,
                                   "retry_in_s": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = 0.5
            self.connected = True
            if sent == 0:
                await self._idle()

    async def _idle(self) -> None:
        self.metrics.spool_depth.set(self.spool.pending_rows)
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=1.0)
        except TimeoutError:
            pass

    async def drain_once(self) -> int:
        """Send one batch of pending rows; return how many were acknowledged."""
        rows = await self.spool.pending(limit=self.batch_size)
        if not rows:
            return 0
        maps = await self.mapping.map([(r.raw, r.charset, r.timezone) for r in rows])
        ready: list[tuple[PendingRow, Mapped]] = []
        for row, mapped in zip(rows, maps, strict=True):
            if mapped.payload is None:
                await self._failed(row, mapped)
            else:
                ready.append((row, mapped))
        events = [event_for(row, mapped, self.source) for row, mapped in ready]
        results = await self.producer.send_batch(self.topic, events) if events else []
        marks: list[PublishedMark] = []
        failure: PublishError | None = None
        for (row, mapped), result in zip(ready, results, strict=True):
            if isinstance(result, PublishError):
                failure = result
                await self.spool.record_failure(row.id, f"{type(result).__name__}: {result}")
                break
            partition, offset = result
            marks.append(PublishedMark(row.id, self.topic, partition, offset,
                                       mapped.patient_key, mapped.summary))
        if marks:
            await self.spool.mark_published(marks)
            self.metrics.published.labels(self.topic).inc(len(marks))
        if failure is not None:
            self.metrics.publish_errors.labels(self.topic).inc()
            raise failure
        self.metrics.spool_depth.set(self.spool.pending_rows)
        return len(marks) + (len(rows) - len(ready))

    async def _failed(self, row: PendingRow, mapped: Mapped) -> None:
        """A row the mapper refused after it was ACKed: kept as failed, never guessed."""
        self.metrics.mapping_failures.inc()
        log.warning("message could not be mapped after it was accepted",
                    extra={"row": row.id, "sender": row.sender, "control_id": row.control_id,
                           "message_type": row.message_type, "reason": mapped.error})
        await self.spool.mark_failed(row.id, mapped.error or "mapping failed", mapped.summary)
