"""The dashboard's Kafka consumer lag against a real broker: events on the bridge's topic
that its consumer group has not committed, per partition, summed."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from connectors.settings import KafkaSettings
from gateway.console.kafka_lag import ConsumerLag
from tests.conftest import CreateTopic
from tests.integration.conftest import bounded, free_port


async def produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition, n in per_partition.items():
            for i in range(n):
                await producer.send_and_wait(topic, f"e{i}".encode(), partition=partition)
    finally:
        await producer.stop()


async def commit(bootstrap: str, topic: str, group: str, offsets: dict[int, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in offsets])
        await consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "")
                               for p, o in offsets.items()})
    finally:
        await consumer.stop()


@bounded(90)
async def test_lag_is_what_the_group_has_not_committed(kafka_bootstrap: str,
                                                       create_topic: CreateTopic) -> None:
    topic = await create_topic(partitions=2)
    await produce(kafka_bootstrap, topic, {0: 5, 1: 3})
    lag = ConsumerLag(KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=topic),
                      "hl7gw-bridge-lag-test", topic)
    try:
        assert await lag.read() == 8  # no commits yet: everything is still to deliver
        await commit(kafka_bootstrap, topic, "hl7gw-bridge-lag-test", {0: 4})
        assert await lag.read() == 4  # 1 left on partition 0, 3 on partition 1
        await commit(kafka_bootstrap, topic, "hl7gw-bridge-lag-test", {0: 5, 1: 3})
        assert await lag.read() == 0
        await produce(kafka_bootstrap, topic, {1: 2})
        assert await lag.read() == 2
    finally:
        await lag.close()


@bounded(60)
async def test_an_unreachable_broker_gives_unknown_not_a_number() -> None:
    port = free_port()
    lag = ConsumerLag(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", topic="t"),
                      "g", "t", timeout_s=1.0)
    try:
        assert await lag.read() is None
        assert await lag.read() is None  # and again, quietly
    finally:
        await lag.close()
    await asyncio.sleep(0)
