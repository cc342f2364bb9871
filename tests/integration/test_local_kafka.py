"""The local Kafka broker against real clients: aiokafka, a restart, and ``hl7gw dev kafka``."""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway.dev.kafka import LocalKafka, default_cache_dir, ensure_jars, free_port, metadata_ready

pytestmark = pytest.mark.integration


async def test_idempotent_producer_round_trip_with_headers(
    kafka_bootstrap: str, create_topic: Callable[..., Awaitable[str]]
) -> None:
    topic = await create_topic(partitions=3)
    headers = [("ce_id", b"MSG00001"), ("content-type", b"application/fhir+json")]
    async with asyncio.timeout(60):
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            sent = await producer.send_and_wait(topic, b'{"resourceType":"Bundle"}',
                                                key=b"patient-1", headers=headers)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            record = await consumer.getone()
        finally:
            await consumer.stop()
    assert (record.partition, record.offset) == (sent.partition, sent.offset)
    assert record.key == b"patient-1"
    assert record.value == b'{"resourceType":"Bundle"}'
    assert list(record.headers) == headers


async def topic_names(bootstrap: str, create: str | None = None) -> list[str]:
    """List the broker's topics, after creating ``create`` if given."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(create, num_partitions=1, replication_factor=1)])
        names: list[str] = await admin.list_topics()
        return names
    finally:
        await admin.close()


def test_restart_keeps_topics_and_never_calls_maven_again(tmp_path: Path) -> None:
    cache = default_cache_dir()
    libs = ensure_jars(cache, "4.1.1")  # a no-op when the session broker already fetched
    jars_before = sorted(p.name for p in libs.iterdir())
    data = tmp_path / "kafka"
    with LocalKafka(data_dir=data, cache_dir=cache) as first:
        asyncio.run(topic_names(first.bootstrap_servers, create="survives-restart"))
    began = time.monotonic()
    with LocalKafka(data_dir=data, cache_dir=cache, mvn="/nonexistent/mvn") as second:
        warm_start = time.monotonic() - began
        assert "survives-restart" in asyncio.run(topic_names(second.bootstrap_servers))
    assert sorted(p.name for p in libs.iterdir()) == jars_before
    print(f"warm start: {warm_start:.1f}s")


# A broker's JVM starts in ~20 s at load average 6 on 2 cores; a stop is bounded by
# hl7gw.shutdown (10 s). Both with room for a loaded machine, and still failing a hang.
START_S = 180.0
STOP_S = 25.0


def line_within(process: subprocess.Popen[str], seconds: float) -> str:
    """The process's next stdout line, or a failure after ``seconds`` (never a hang)."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(seconds):
            pytest.fail(f"no output within {seconds:.0f}s")
    return process.stdout.readline()


def test_dev_kafka_command_serves_on_the_asked_port_until_sigint(tmp_path: Path) -> None:
    port = free_port()
    code = ("import sys; from pathlib import Path; from gateway.dev.kafka import run_broker; "
            f"sys.exit(run_broker({port}, Path(sys.argv[1])))")
    process = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "kafka")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HL7GW_CACHE_DIR": str(default_cache_dir())})
    try:
        ready = line_within(process, START_S)
        assert ready.startswith(f"Kafka ready at 127.0.0.1:{port} (started in "), ready
        assert metadata_ready("127.0.0.1", port)
        process.send_signal(signal.SIGINT)
        began = time.monotonic()
        _out, err = process.communicate(timeout=STOP_S)
        print(f"hl7gw dev kafka stopped {time.monotonic() - began:.1f}s after SIGINT")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "stopping Kafka" in err
    assert not metadata_ready("127.0.0.1", port)
    assert (tmp_path / "kafka" / "data" / "meta.properties").is_file()  # --data kept
