"""A Kafka outage is reported truthfully and does not hold up the gateway's stop (16.8).

Seen before the fix: with the broker stopped and rows pending, ``/readyz`` said
``"kafka": "connected"`` for minutes, nothing was logged, and SIGTERM hung until the
broker came back (aiokafka retries a batch for a known leader forever and its ``stop()``
waits for it). This test needs a broker it can stop, so it starts a private one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import httpx
import pytest

from connectors.settings import KafkaSettings
from gateway.ack import ack_code_of
from gateway.config import GatewaySettings, HttpSettings, ListenerSettings, SpoolSettings
from gateway.dev.kafka import LocalKafka, default_cache_dir
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.integration.conftest import bounded, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = split_messages((ROOT / "samples" / "adt_a01.hl7").read_bytes())[0]
HL7GW = str(Path(sys.executable).with_name("hl7gw"))
DRAIN_S = 5.0


def numbered(i: int) -> bytes:
    first, rest = SAMPLE.split(b"\r", 1)
    fields = first.split(b"|")
    fields[9] = f"OUTAGE{i:04d}".encode()
    return b"|".join(fields) + b"\r" + rest


async def readyz(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.get("/readyz")
    body: dict[str, object] = response.json()
    return body


async def wait_for(what: str, check: object, within: float) -> None:
    """Poll the async ``check`` until it is true, or fail naming ``what``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within:.0f}s: {what}")


@bounded(300)
async def test_outage_is_reported_and_the_stop_keeps_its_deadline(
        tmp_path: Path, kafka_topic: str, caplog: pytest.LogCaptureFixture) -> None:
    broker = LocalKafka(port=free_port(), data_dir=tmp_path / "kafka",
                        cache_dir=default_cache_dir())
    bootstrap = await asyncio.to_thread(broker.start)
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="outage", port=0)], http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"), mapping_workers=0,
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic=kafka_topic,
                            request_timeout_ms=3000),
        drain_timeout_s=DRAIN_S)
    caplog.set_level(logging.WARNING, logger="hl7gw.kafka")
    gateway = GatewayService(settings)
    gateway.kafka_watch.probe_interval_s = 0.5  # seconds, not minutes, for the test
    gateway.kafka_watch.warn_interval_s = 2.0
    stopped = False
    try:
        await gateway.start()
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}")
        async with http, MllpClient("127.0.0.1", gateway.listeners[0].port,
                                    timeout=10) as mllp:
            for i in range(5):
                assert ack_code_of((await mllp.send(numbered(i))).decode()) in ("AA", "CA")

            async def published() -> bool:
                return await gateway.spool.depth() == 0 and \
                    (await readyz(http))["kafka"] == "connected"

            await wait_for("the first messages published", published, 60)
            await asyncio.to_thread(broker.stop)
            for i in range(5, 15):  # intake goes on into the spool
                assert ack_code_of((await mllp.send(numbered(i))).decode()) in ("AA", "CA")

            async def reported() -> bool:
                return (await readyz(http))["kafka"] == "unreachable"

            await wait_for("readyz saying kafka is unreachable", reported, 15)
            detail = await readyz(http)
            assert detail["oldest_pending_age_s"] is not None
            metrics = (await http.get("/metrics")).text
            assert "hl7gw_kafka_up 0.0" in metrics
            assert "hl7gw_spool_depth 10.0" in metrics

            async def warned() -> bool:
                return any(getattr(r, "oldest_pending_age_s", None) is not None
                           for r in caplog.records)

            await wait_for("a warning with the oldest row's age", warned, 15)
        began = time.monotonic()
        await gateway.stop()
        stopped = True
        took = time.monotonic() - began
        # The deadline, plus the moments closing sockets and the spool take.
        assert took < DRAIN_S + 5, f"stop took {took:.1f}s"
    finally:
        if not stopped:
            await gateway.stop()
        await asyncio.to_thread(broker.stop)
    with sqlite3.connect(tmp_path / "spool.db") as conn:
        waiting = conn.execute(
            "SELECT count(*) FROM messages WHERE status = 'pending'").fetchone()[0]
    conn.close()
    assert waiting == 10  # kept for the next start, none lost, none marked


@bounded(300)
async def test_sigterm_of_hl7gw_serve_during_an_outage_exits_within_the_deadline(
        tmp_path: Path, kafka_topic: str) -> None:
    # The case, as an operator runs it: ``hl7gw serve``, the broker stopped with
    # rows pending, then SIGTERM (it hung for over 4 minutes, until the broker returned).
    broker = LocalKafka(port=free_port(), data_dir=tmp_path / "kafka",
                        cache_dir=default_cache_dir())
    bootstrap = await asyncio.to_thread(broker.start)
    mllp, http_port = free_port(), free_port()
    config = tmp_path / "gw.yaml"
    config.write_text(f"""\
listeners:
  - name: outage
    port: {mllp}
http:
  port: {http_port}
spool:
  path: {tmp_path / "spool.db"}
kafka:
  bootstrap_servers: {bootstrap}
  topic: {kafka_topic}
  request_timeout_ms: 3000
drain_timeout_s: {DRAIN_S}
""")
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    gateway = await asyncio.create_subprocess_exec(
        HL7GW, "serve", "--config", str(config), "--log-level", "warning",
        stderr=asyncio.subprocess.DEVNULL, env=env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:

            async def connected() -> bool:
                try:
                    return (await readyz(http)).get("kafka") == "connected"
                except httpx.TransportError:
                    return False

            await wait_for("the gateway connected to Kafka", connected, 60)
            async with MllpClient("127.0.0.1", mllp, timeout=10) as client:
                for i in range(15):
                    if i == 5:  # the first ones published (the topic's leader is known)
                        async def drained() -> bool:
                            return (await readyz(http)).get("spool_depth") == 0

                        await wait_for("the first messages published", drained, 60)
                        await asyncio.to_thread(broker.stop)
                    code = ack_code_of((await client.send(numbered(i))).decode())
                    assert code in ("AA", "CA")
        began = time.monotonic()
        gateway.send_signal(signal.SIGTERM)
        await asyncio.wait_for(gateway.wait(), DRAIN_S + 25)
        took = time.monotonic() - began
        assert gateway.returncode == 0
        assert took < DRAIN_S + 5, f"exit took {took:.1f}s"
    finally:
        if gateway.returncode is None:
            gateway.kill()
            await gateway.wait()
        await asyncio.to_thread(broker.stop)
    with sqlite3.connect(tmp_path / "spool.db") as conn:
        waiting = conn.execute(
            "SELECT count(*) FROM messages WHERE status = 'pending'").fetchone()[0]
    conn.close()
    assert waiting == 10
