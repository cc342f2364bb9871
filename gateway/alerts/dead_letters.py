"""The bridge's dead-letter topic, read from Kafka: listing, one event, redrive, growth.

The bridge (``connectors.bridge.dlq``) writes an event it gave up on to ``dlq_topic``
with its original key, value and headers plus ``dlq_*`` headers saying why (reason,
HTTP status, attempts, target, where it came from). The console lists them and sends
chosen ones back to the bridge's topic; the ``dlq_growth`` alert rule sums the topic's
end offsets. Every call opens its own group-less client and closes it (the topic is
read rarely, by a person or every few seconds by the alert engine), within a time limit,
so a silent Kafka makes a page say so rather than hang.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from connectors.bridge.dlq import DLQ_PREFIX
from connectors.settings import KafkaSettings
from gateway.errors import GatewayError

Position = tuple[int, int]  # (partition, offset)


class DeadLetterError(GatewayError):
    """Kafka did not answer, or a chosen dead letter is not on the topic any more."""


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic (``value`` is the event body: PHI)."""

    partition: int
    offset: int
    timestamp: float  # Unix seconds, when the bridge gave up
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def meta(self) -> dict[str, Any]:
        """What a viewer may see: the error headers, CloudEvent type/id and patient key."""
        text = {name: raw.decode("utf-8", "replace") for name, raw in self.headers}
        errors = {name[len(DLQ_PREFIX):]: value for name, value in text.items()
                  if name.startswith(DLQ_PREFIX)}
        return {"partition": self.partition, "offset": self.offset,
                "timestamp": self.timestamp, "errors": errors,
                "ce_type": text.get("ce_type"), "ce_id": text.get("ce_id"),
                "message_type": text.get("ce_hl7messagetype"),
                "patient_key": self.key.decode("utf-8", "replace") if self.key else None}

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers as the event first had them (``dlq_*`` removed)."""
        return [(name, raw) for name, raw in self.headers if not name.startswith(DLQ_PREFIX)]


def parse_positions(text: str) -> dict[int, int]:
    """``"0:12,2:7"`` -> {0: 12, 2: 7} (the page's ``before`` cursor); ValueError if bad."""
    found: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        partition, _, offset = part.partition(":")
        p, o = int(partition), int(offset)
        if p < 0 or o < 0:
            raise ValueError(f"{part!r}: partitions and offsets are 0 or more")
        found[p] = o
    return found


def format_positions(positions: dict[int, int]) -> str:
    """The inverse of ``parse_positions``."""
    return ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))


class DeadLetterTopic:
    """``topic`` (the DLQ) on the cluster ``kafka`` names; redrives go to ``main_topic``."""

    def __init__(self, kafka: KafkaSettings, topic: str, main_topic: str,
                 timeout_s: float = 10.0) -> None:
        self.kafka = kafka
        self.topic = topic
        self.main_topic = main_topic
        self.timeout_s = timeout_s

    async def _within(self, work: Any, doing: str) -> Any:
        try:
            return await asyncio.wait_for(work, self.timeout_s)
        except DeadLetterError:
            raise
        except Exception as exc:  # noqa: BLE001 - any Kafka trouble is one answer to a person
            raise DeadLetterError(
                f"Kafka did not answer while {doing} {self.topic!r} "
                f"({type(exc).__name__}); check kafka.bootstrap_servers and try again"
            ) from None

    async def _consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(**self.kafka.client_options(), group_id=None,
                                    enable_auto_commit=False)
        await consumer.start()
        return consumer

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        cluster = await consumer._client.fetch_all_metadata()
        numbers = cluster.partitions_for_topic(self.topic) or set()
        return [TopicPartition(self.topic, p) for p in sorted(numbers)]

    async def end_total(self) -> int | None:
        """Records ever written to the topic (summed end offsets); None when Kafka is silent."""
        try:
            total: int = await self._within(self._end_total(), "reading the end of")
        except DeadLetterError:
            return None
        return total

    async def _end_total(self) -> int:
        consumer = await self._consumer()
        try:
            partitions = await self._partitions(consumer)
            if not partitions:
                return 0
            ends = await consumer.end_offsets(partitions)
            return sum(ends.values())
        finally:
            await consumer.stop()

    async def page(self, limit: int, before: dict[int, int] | None = None
                   ) -> tuple[list[DeadLetter], dict[int, int] | None]:
        """Up to ``limit`` dead letters, newest first, older than the ``before`` cursor;
        and the cursor for the next page (None: nothing older)."""
        found: tuple[list[DeadLetter], dict[int, int] | None] = await self._within(
            self._page(limit, before or {}), "reading")
        return found

    async def _page(self, limit: int, before: dict[int, int]
                    ) -> tuple[list[DeadLetter], dict[int, int] | None]:
        consumer = await self._consumer()
        try:
            partitions = await self._partitions(consumer)
            if not partitions:
                return [], None
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
            ranges = {}
            for tp in partitions:
                stop = min(before.get(tp.partition, ends[tp]), ends[tp])
                ranges[tp.partition] = (max(starts[tp], stop - limit), stop)
            records = await _read_ranges(consumer, self.topic, ranges)
        finally:
            await consumer.stop()
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset), reverse=True)
        shown = records[:limit]
        cursor = {p: stop for p, (_, stop) in ranges.items()}
        for record in shown:
            cursor[record.partition] = min(cursor[record.partition], record.offset)
        more = any(cursor[tp.partition] > starts[tp] for tp in partitions)
        return shown, cursor if more else None

    async def fetch(self, positions: list[Position]) -> list[DeadLetter]:
        """The dead letters at ``positions``; DeadLetterError naming any that is gone."""
        found: list[DeadLetter] = await self._within(self._fetch(positions), "reading")
        return found

    async def _fetch(self, positions: list[Position]) -> list[DeadLetter]:
        wanted: dict[int, set[int]] = {}
        for partition, offset in positions:
            wanted.setdefault(partition, set()).add(offset)
        consumer = await self._consumer()
        try:
            known = {tp.partition: tp for tp in await self._partitions(consumer)}
            missing = sorted(set(wanted) - set(known))
            if missing:
                raise DeadLetterError(f"{self.topic!r} has no partition {missing[0]}")
            tps = [known[p] for p in wanted]
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            # only what is still on the topic: an offset past its end is simply not found
            ranges = {tp.partition: (max(min(wanted[tp.partition]), starts[tp]),
                                     min(max(wanted[tp.partition]) + 1, ends[tp]))
                      for tp in tps}
            records = await _read_ranges(consumer, self.topic, ranges)
        finally:
            await consumer.stop()
        by_position = {(r.partition, r.offset): r for r in records}
        gone = [f"{p}:{o}" for p, o in positions if (p, o) not in by_position]
        if gone:
            raise DeadLetterError(f"no dead letter at partition:offset {', '.join(gone)} "
                                  "(expired by the topic's retention?): reload the page")
        return [by_position[pos] for pos in positions]

    async def redrive(self, letters: list[DeadLetter]) -> list[Position]:
        """Produce each letter to ``main_topic``: same key, value and original headers.
        The positions (partition, offset) they got there, in order."""
        done: list[Position] = await self._within(self._redrive(letters), "redriving from")
        return done

    async def _redrive(self, letters: list[DeadLetter]) -> list[Position]:
        producer = AIOKafkaProducer(**self.kafka.client_options(), acks="all",
                                    enable_idempotence=True)
        await producer.start()
        try:
            placed: list[Position] = []
            for letter in letters:
                meta = await producer.send_and_wait(
                    self.main_topic, letter.value, key=letter.key,
                    headers=letter.original_headers())
                placed.append((meta.partition, meta.offset))
            return placed
        finally:
            await producer.stop()


async def _read_ranges(consumer: AIOKafkaConsumer, topic: str,
                       ranges: dict[int, tuple[int, int]]) -> list[DeadLetter]:
    """Records with offsets in [start, stop) per partition (what is left of them)."""
    todo = {TopicPartition(topic, p): (start, stop) for p, (start, stop) in ranges.items()
            if stop > start}
    if not todo:
        return []
    consumer.assign(list(todo))
    for tp, (start, _) in todo.items():
        consumer.seek(tp, start)
    out: list[DeadLetter] = []
    while todo:
        batches = await consumer.getmany(*todo, timeout_ms=500)
        for tp, batch in batches.items():
            start, stop = todo[tp]
            for rec in batch:
                if start <= rec.offset < stop:
                    out.append(DeadLetter(rec.partition, rec.offset, rec.timestamp / 1000.0,
                                          rec.key, rec.value or b"",
                                          tuple((n, v or b"") for n, v in rec.headers)))
        for tp in list(todo):
            if await consumer.position(tp) >= todo[tp][1]:
                del todo[tp]
    return out
