"""Durability with real processes: SIGKILL mid-stream, and a broker outage.

The promise tested: every message that got a positive ACK reaches Kafka, and a message
re-sent because its ACK never came is not doubled (same spool row, same event id).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from gateway.ack import ack_code_of
from gateway.dev.kafka import LocalKafka, default_cache_dir
from gateway.mllp.client import MllpClient, MllpClientError, split_messages
from tests.integration.conftest import free_port
from tests.support import SAMPLES

pytestmark = pytest.mark.integration

HL7GW = str(Path(sys.executable).with_name("hl7gw"))
SAMPLE = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
ACCEPTED = ("AA", "CA")


def numbered(i: int) -> bytes:
    """The sample with MSH-10 = CRASH<i> and a patient of its own (10 patients in turn)."""
    first, rest = SAMPLE.split(b"\r", 1)
    fields = first.split(b"|")
    fields[9] = f"CRASH{i:05d}".encode()
    rest = rest.replace(b"4820017^^^GOODHEALTH", f"48200{i % 10:02d}^^^GOODHEALTH".encode(), 1)
    return b"|".join(fields) + b"\r" + rest


def write_config(tmp_path: Path, bootstrap: str, topic: str, mllp: int) -> Path:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"""\
listeners:
  - name: crash
    port: {mllp}
http:
  port: {free_port()}
spool:
  path: {tmp_path / "spool.db"}
kafka:
  bootstrap_servers: {bootstrap}
  topic: {topic}
  request_timeout_ms: 5000
""")
    return cfg


async def start_gateway(cfg: Path) -> asyncio.subprocess.Process:
    """``hl7gw serve`` in its own process, as an operator would run it."""
    return await asyncio.create_subprocess_exec(
        HL7GW, "serve", "--config", str(cfg), "--log-level", "warning",
        stderr=asyncio.subprocess.DEVNULL)


async def wait_port(port: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"gateway did not listen on {port}")


async def read_all(bootstrap: str, topic: str, expect_ids: int) -> list[tuple[str, str, int]]:
    """(control id, ce_id, partition) of every record, once ``expect_ids`` ids were seen."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[str, str, int]] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    headers = dict(r.headers)
                    out.append((headers["ce_hl7spoolrow"].decode(), headers["ce_id"].decode(),
                                r.partition))
            if len({ce for _, ce, _ in out}) >= expect_ids:
                break
    finally:
        await consumer.stop()
    return out


async def test_sigkill_mid_stream_loses_nothing_acked(tmp_path: Path, kafka_bootstrap: str,
                                                      kafka_topic: str) -> None:
    total, kill_at = 5000, 1500
    mllp = free_port()
    cfg = write_config(tmp_path, kafka_bootstrap, kafka_topic, mllp)
    gateway = await start_gateway(cfg)
    acked: dict[int, str] = {}
    try:
        await wait_port(mllp)
        i = 0
        async with MllpClient("127.0.0.1", mllp, timeout=10) as client:
            try:
                while i < total:
                    if i == kill_at:
                        # Kill while the next frame is on its way: its ACK may never come.
                        client._writer.write(b"\x0b" + numbered(i) + b"\x1c\r")  # type: ignore[union-attr]
                        os.kill(gateway.pid, signal.SIGKILL)
                        await client.read_ack()
                        raise AssertionError("an ACK came from a killed gateway")
                    code = ack_code_of((await client.send(numbered(i))).decode())
                    assert code in ACCEPTED
                    acked[i] = code
                    i += 1
            except MllpClientError:
                pass
        await asyncio.wait_for(gateway.wait(), 10)
        assert len(acked) == kill_at
        # Restart on the same spool; re-send everything not acknowledged, then the rest.
        gateway = await start_gateway(cfg)
        await wait_port(mllp)
        async with MllpClient("127.0.0.1", mllp, timeout=10) as client:
            for j in range(kill_at, total):
                code = ack_code_of((await client.send(numbered(j))).decode())
                assert code in ACCEPTED
                acked[j] = code
        records = await read_all(kafka_bootstrap, kafka_topic, expect_ids=total)
    finally:
        if gateway.returncode is None:
            gateway.send_signal(signal.SIGTERM)
            await asyncio.wait_for(gateway.wait(), 20)
    events = {ce for _, ce, _ in records}
    rows = {row for row, _, _ in records}
    conn = sqlite3.connect(tmp_path / "spool.db")
    spooled = conn.execute("SELECT id, control_id, status FROM messages").fetchall()
    conn.close()
    # One spool row per message: the re-sent in-flight message did not get a second row.
    assert sorted(c for _, c, _ in spooled) == [f"CRASH{i:05d}" for i in range(total)]
    assert {str(r) for r, _, _ in spooled} == rows  # every acknowledged message in Kafka
    assert len(events) == total
    assert {st for _, _, st in spooled} == {"published"}
    # A record may repeat only if the publisher died between Kafka's ack and the spool
    # update; such repeats carry the same event id, so consumers see one message.
    assert len(records) - total <= 200


async def test_broker_outage_of_30s_is_buffered_and_drained_in_order(
        tmp_path: Path, kafka_topic: str) -> None:
    from connectors.settings import KafkaSettings
    from gateway.config import GatewaySettings, HttpSettings, ListenerSettings, SpoolSettings
    from gateway.service import GatewayService

    port = free_port()
    broker = LocalKafka(port=port, data_dir=tmp_path / "kafka", cache_dir=default_cache_dir())
    bootstrap = await asyncio.to_thread(broker.start)
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="outage", port=0)], http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"), mapping_workers=0,
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic=kafka_topic,
                            request_timeout_ms=3000))
    sent: list[int] = []
    try:
        async with GatewayService(settings, http=False) as gateway:
            async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
                async def send(i: int) -> None:
                    code = ack_code_of((await client.send(numbered(i))).decode())
                    assert code in ACCEPTED, f"message {i} got {code}"
                    sent.append(i)

                for i in range(50):
                    await send(i)
                await asyncio.to_thread(broker.stop)
                outage_began = time.monotonic()
                i = 50
                while time.monotonic() - outage_began < 30:  # ACKs keep coming from the spool
                    await send(i)
                    i += 1
                    await asyncio.sleep(0.05)
                assert await gateway.spool.depth() > 0
                await asyncio.to_thread(broker.start)
                for j in range(i, i + 20):
                    await send(j)
            for _ in range(300):  # up to 60 s for the spool to drain
                if not await gateway.spool.depth():
                    break
                await asyncio.sleep(0.2)
            assert await gateway.spool.depth() == 0
        records = await read_all(bootstrap, kafka_topic, expect_ids=len(sent))
    finally:
        await asyncio.to_thread(broker.stop)
    # Per patient (partition key), events arrive in the order the messages were sent.
    first_seen: dict[str, int] = {}
    order: dict[int, list[int]] = {}
    for row, ce, partition in records:
        if ce in first_seen:
            continue
        first_seen[ce] = int(row)
        order.setdefault(partition, []).append(int(row))
    assert len(first_seen) == len(sent)
    for rows in order.values():
        assert rows == sorted(rows)
