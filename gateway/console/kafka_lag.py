"""The bridge's consumer lag, for the dashboard: events in Kafka its group has not yet
delivered (committed), summed over the topic's partitions.

The gateway's own lag toward Kafka is the spool (pending rows, the oldest one's age); this
is the next hop, the one a cloud developer asks about: are the functions keeping up? It
needs ``bridge`` in the config (its topic and group id). One admin client and one
group-less consumer are kept open and asked twice per sample (committed offsets, end
offsets); when Kafka does not answer, the lag is unknown (None), never a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError

from connectors.settings import KafkaSettings

log = logging.getLogger("hl7gw.console")


class ConsumerLag:
    """Reads one consumer group's lag on one topic; ``close()`` when done."""

    def __init__(self, kafka: KafkaSettings, group_id: str, topic: str,
                 timeout_s: float = 3.0) -> None:
        self.kafka = kafka
        self.group_id = group_id
        self.topic = topic
        self.timeout_s = timeout_s
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._warned = False

    async def read(self) -> int | None:
        """Events on the topic not yet committed by the group; None when Kafka is silent."""
        try:
            lag = await asyncio.wait_for(self._read(), self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - the dashboard shows "unknown", Kafka retried
            if not self._warned:
                log.warning("consumer lag unknown: kafka did not answer",
                            extra={"error_class": type(exc).__name__, "group": self.group_id})
                self._warned = True
            await self.close()  # reconnect next time
            return None
        self._warned = False
        return lag

    async def _read(self) -> int:
        options: dict[str, Any] = self.kafka.client_options()
        if self._admin is None:
            admin = AIOKafkaAdminClient(**options)
            await admin.start()
            self._admin = admin
        if self._consumer is None:
            consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False)
            await consumer.start()
            self._consumer = consumer
        # fresh metadata each time: partitions may have been added
        cluster = await self._consumer._client.fetch_all_metadata()
        numbers = cluster.partitions_for_topic(self.topic) or set()
        partitions = [TopicPartition(self.topic, p) for p in sorted(numbers)]
        if not partitions:
            return 0
        ends = await self._consumer.end_offsets(partitions)
        starts = await self._consumer.beginning_offsets(partitions)
        committed = await self._committed(partitions)
        lag = 0
        for tp in partitions:
            done = committed.get(tp)
            # no commit yet: everything still on the partition is to be delivered
            position = done.offset if done is not None and done.offset >= 0 else starts[tp]
            lag += max(0, ends[tp] - position)
        return lag

    async def _committed(self, partitions: list[TopicPartition]) -> dict[TopicPartition, Any]:
        """The group's committed offsets; retried while its coordinator is still being
        elected (a new broker, or a first group), within ``read``'s time limit."""
        assert self._admin is not None
        while True:
            try:
                found: dict[TopicPartition, Any] = await self._admin.list_consumer_group_offsets(
                    self.group_id, partitions=partitions)
                return found
            except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        """Close the clients; the next ``read`` opens new ones."""
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()
