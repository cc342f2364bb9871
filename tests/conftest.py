"""Shared fixtures: a real Kafka broker for the whole session and fresh topics per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway.dev.kafka import LocalKafka, default_cache_dir

CreateTopic = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real broker: ``$KAFKA_BOOTSTRAP_SERVERS`` or a local one.

    Never skips: when the local broker cannot start, every test using it errors with why.
    """
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    broker = LocalKafka(data_dir=tmp_path_factory.mktemp("kafka"), cache_dir=default_cache_dir())
    with broker:
        yield broker.bootstrap_servers


@pytest.fixture
def kafka_topic() -> str:
    """A fresh topic name; the broker auto-creates it (3 partitions) on first use."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def create_topic(kafka_bootstrap: str) -> CreateTopic:
    """``await create_topic(partitions=3)``: create a fresh topic explicitly; its name."""

    async def create(partitions: int = 1, name: str | None = None) -> str:
        topic = name or f"test-{uuid.uuid4().hex}"
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            response = await admin.create_topics(
                [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
            )
        finally:
            await admin.close()
        for _name, error_code, *detail in response.topic_errors:
            if error_code != 0:
                pytest.fail(f"creating topic {topic!r} failed: error {error_code} {detail}")
        return topic

    return create
