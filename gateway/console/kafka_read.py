"""Read one published record back from Kafka: the Bundle a row was published as.

The spool keeps where each row went (topic, partition, offset), not what was sent; the
console's diff reads the record back from there. One short-lived consumer without a group
is assigned the one partition, seeks the one offset and reads until it has that record or
the deadline passes. ``None`` means the record is not there any more: deleted by the
topic's retention (the offset is below the partition's first one), compacted away, or the
offset was never written (past the end). Kafka not answering is an error, not ``None``:
"gone" and "cannot tell" call for different actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from connectors.settings import KafkaSettings
from gateway.errors import BrokerUnavailable

DEFAULT_DEADLINE_S = 10.0


@dataclass(frozen=True)
class KafkaRecord:
    """One record as stored: key, value and headers (CloudEvents binary mode)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


async def read_record(kafka: KafkaSettings, topic: str, partition: int, offset: int, *,
                      deadline_s: float = DEFAULT_DEADLINE_S) -> KafkaRecord | None:
    """The record at ``topic``/``partition``/``offset``; None when Kafka no longer has it.

    Raises BrokerUnavailable when Kafka does not answer within ``deadline_s``.
    """
    try:
        return await asyncio.wait_for(_read(kafka, topic, partition, offset, deadline_s),
                                      deadline_s)
    except TimeoutError:
        raise BrokerUnavailable(
            f"Kafka did not return {topic}/{partition}@{offset} within {deadline_s:g} s: "
            "check that the brokers in kafka.bootstrap_servers answer, then try again"
        ) from None


async def _read(kafka: KafkaSettings, topic: str, partition: int, offset: int,
                deadline_s: float) -> KafkaRecord | None:
    options: dict[str, Any] = kafka.client_options()
    consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="none", max_poll_records=50)
    try:
        await consumer.start()
    except Exception as exc:  # noqa: BLE001 - any start failure means "cannot tell"
        with contextlib.suppress(Exception):
            await consumer.stop()
        raise BrokerUnavailable(f"cannot reach Kafka ({type(exc).__name__}): check "
                                "kafka.bootstrap_servers and that a broker runs") from None
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        first = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if offset < first or offset >= end:
            return None  # removed by retention, or never written
        consumer.seek(tp, offset)
        stop = time.monotonic() + deadline_s
        while time.monotonic() < stop:
            try:
                batches = await consumer.getmany(tp, timeout_ms=500)
            except OffsetOutOfRangeError:
                return None  # retention removed it between the check and the fetch
            for record in batches.get(tp, []):
                if record.offset == offset:
                    return KafkaRecord(topic, partition, offset, record.key, record.value,
                                       tuple(record.headers))
                if record.offset > offset:
                    return None  # compacted away: the log skips it
        raise TimeoutError
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
