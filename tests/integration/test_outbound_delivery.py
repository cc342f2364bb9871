"""The return path with real parts: results on a real broker -> the gateway's outbound
queue (a real SQLite spool) -> a local EHR over real MLLP sockets.

Each test publishes FHIR results to a fresh outbound topic the way the bridge does
(``connectors.results``) and watches what the EHR receives and ACKs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka import EventProducer
from connectors.results import publish_result
from connectors.settings import KafkaSettings
from gateway.config import GatewaySettings, HttpSettings, ListenerSettings, SpoolSettings
from gateway.dev.ehr import LocalEhr, Received
from gateway.outbound.settings import DestinationSettings, OutboundSettings
from gateway.service import GatewayService
from mappers.outbound import control_id_for
from tests.integration.conftest import free_port
from tests.support.outbound import cause, result

pytestmark = pytest.mark.integration

HL7GW = str(Path(sys.executable).with_name("hl7gw"))
WAIT_S = 60.0  # holds on a loaded machine; tests finish as soon as the condition holds


def expected_control_id(n: int) -> str:
    return control_id_for(f"cause-{n}.result")


def msh10(received: Received) -> str:
    return received.raw.split(b"\r", 1)[0].decode().split("|")[9]


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     within: float = WAIT_S) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g} s: {what}")
        await asyncio.sleep(0.05)


def settings_for(tmp_path: Path, bootstrap: str, topic: str, ehr_port: int,
                 **destination: Any) -> GatewaySettings:
    dest = {"name": "ehr", "host": "127.0.0.1", "port": ehr_port, "ack_timeout_s": 1.5,
            "connect_timeout_s": 2.0, "backoff_initial_s": 0.05, "backoff_max_s": 0.3,
            "max_attempts": 50, **destination}
    return GatewaySettings(
        source="urn:hl7gw:test",
        listeners=[ListenerSettings(name="test", port=0)],
        http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic=f"{topic}.in"),
        outbound=OutboundSettings(topic=topic, group_id=f"g-{topic}",
                                  destinations=[DestinationSettings(**dest)]))


class Results:
    """Publishes results to the outbound topic as the bridge does."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = EventProducer(KafkaSettings(bootstrap_servers=bootstrap))

    async def send(self, *numbers: int) -> None:
        for n in numbers:
            await publish_result(self.producer, cause(n), result(n), topic=self.topic)


@pytest.fixture
async def results(kafka_bootstrap: str, kafka_topic: str) -> AsyncIterator[Results]:
    publisher = Results(kafka_bootstrap, kafka_topic)
    await publisher.producer.start()
    yield publisher
    await publisher.producer.stop()


@pytest.fixture
async def ehr() -> AsyncIterator[LocalEhr]:
    async with LocalEhr() as running:
        yield running


async def rows(gateway: GatewayService) -> list[Any]:
    return sorted(await gateway.spool.find_outbound(limit=500), key=lambda r: r.id)


async def all_sent(gateway: GatewayService, count: int) -> bool:
    found = await rows(gateway)
    return len(found) == count and all(r.status == "sent" for r in found)


async def test_results_reach_the_ehr_in_order_with_their_control_ids(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str, results: Results,
        ehr: LocalEhr) -> None:
    settings = settings_for(tmp_path, kafka_bootstrap, kafka_topic, ehr.port)
    async with GatewayService(settings, http=False) as gateway:
        await results.send(1, 2, 3, 4, 5)
        await results.send(3)  # the same result again (a bridge that crashed and resent)
        got = await ehr.wait_for(5, WAIT_S)
        await eventually(lambda: all_sent(gateway, 5), "every row sent")
        await asyncio.sleep(0.5)  # a doubled delivery would show up here
        assert [msh10(r) for r in ehr.received] == [expected_control_id(n) for n in range(1, 6)]
        assert {r.message_type for r in got} == {"ORU^R01"}
        assert all(r.ack_code == "AA" for r in ehr.received)
        assert [(r.attempts, r.ack_code) for r in await rows(gateway)] == [(1, "AA")] * 5
        sent = gateway.registry.get_sample_value("hl7gw_outbound_sent_total",
                                                 {"destination": "ehr"})
        assert sent == 5
        assert gateway.registry.get_sample_value("hl7gw_outbound_consumed_total",
                                                 {"outcome": "duplicate"}) == 1


async def test_a_destination_down_queues_then_drains_in_order(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str, results: Results) -> None:
    port = free_port()  # nobody listens yet: the EHR is down
    settings = settings_for(tmp_path, kafka_bootstrap, kafka_topic, port)
    async with GatewayService(settings, http=False) as gateway:
        await results.send(*range(1, 9))

        async def queued_and_retrying() -> bool:
            depth = (await gateway.spool.outbound_depths()).get("ehr")
            retries = gateway.registry.get_sample_value(
                "hl7gw_outbound_retries_total", {"destination": "ehr", "reason": "connection"})
            return depth is not None and depth.queued == 8 and (retries or 0) >= 2

        await eventually(queued_and_retrying, "8 queued while the EHR is down")
        async with LocalEhr(port=port) as ehr:
            await ehr.wait_for(8, WAIT_S)
            await eventually(lambda: all_sent(gateway, 8), "every row sent")
            assert [msh10(r) for r in ehr.received] == [
                expected_control_id(n) for n in range(1, 9)]


async def test_ae_is_retried_with_the_same_control_id_until_aa(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str, results: Results,
        ehr: LocalEhr) -> None:
    ehr.script(["AE", "AE", "AA"])
    settings = settings_for(tmp_path, kafka_bootstrap, kafka_topic, ehr.port)
    async with GatewayService(settings, http=False) as gateway:
        await results.send(1)
        await ehr.wait_for(3, WAIT_S)
        await eventually(lambda: all_sent(gateway, 1), "the row sent")
        assert [(msh10(r), r.ack_code) for r in ehr.received] == [
            (expected_control_id(1), "AE"), (expected_control_id(1), "AE"),
            (expected_control_id(1), "AA")]
        assert ehr.received[0].raw == ehr.received[2].raw  # the same bytes resent
        [row] = await rows(gateway)
        assert (row.attempts, row.ack_code) == (3, "AA")
        assert gateway.registry.get_sample_value(
            "hl7gw_outbound_retries_total", {"destination": "ehr", "reason": "AE"}) == 2


async def test_ar_fails_the_message_and_a_replay_sends_it_again(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str, results: Results,
        ehr: LocalEhr) -> None:
    ehr.script(["AR"])
    settings = settings_for(tmp_path, kafka_bootstrap, kafka_topic, ehr.port)
    async with GatewayService(settings, http=False) as gateway:
        await results.send(1, 2)
        await ehr.wait_for(2, WAIT_S)

        async def first_failed_second_sent() -> bool:
            found = await rows(gateway)
            return [r.status for r in found] == ["failed", "sent"]

        await eventually(first_failed_second_sent, "AR'd row failed, the next one sent")
        failed = (await rows(gateway))[0]
        assert failed.attempts == 1 and failed.ack_code == "AR"
        assert "refused with AR" in (failed.last_error or "")
        assert gateway.outbound is not None
        [new_id] = await gateway.outbound.replay([failed.id])
        await ehr.wait_for(3, WAIT_S)
        await eventually(lambda: all_sent(gateway, 2), "the replayed row sent")
        assert msh10(ehr.received[2]) == expected_control_id(1)  # same MSH-10 on replay
        replayed = await gateway.spool.get_outbound(new_id)
        assert replayed is not None and (replayed.replays, replayed.ack_code) == (1, "AA")


async def test_a_late_ack_for_an_earlier_message_is_not_credited(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str, results: Results,
        ehr: LocalEhr) -> None:
    settings = settings_for(tmp_path, kafka_bootstrap, kafka_topic, ehr.port)
    async with GatewayService(settings, http=False) as gateway:
        await results.send(1)
        await ehr.wait_for(1, WAIT_S)
        await eventually(lambda: all_sent(gateway, 1), "the first row sent")
        ehr.stale_ack_next(then_correct=False)  # answers #2 with #1's control id only
        await results.send(2)
        await ehr.wait_for(3, WAIT_S)  # #2, unanswered but for the stale ACK, then resent
        await eventually(lambda: all_sent(gateway, 2), "the second row sent")
        second = (await rows(gateway))[1]
        assert second.attempts == 2  # the stale ACK did not settle the first attempt
        assert [msh10(r) for r in ehr.received] == [
            expected_control_id(1), expected_control_id(2), expected_control_id(2)]
        assert gateway.registry.get_sample_value("hl7gw_outbound_ignored_acks_total",
                                                 {"destination": "ehr"}) == 1


def write_config(tmp_path: Path, bootstrap: str, topic: str, ehr_port: int) -> Path:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"""\
listeners:
  - name: in
    port: {free_port()}
http:
  port: {free_port()}
spool:
  path: {tmp_path / "spool.db"}
kafka:
  bootstrap_servers: {bootstrap}
  topic: {topic}.in
outbound:
  topic: {topic}
  group_id: g-{topic}
  destinations:
    - name: ehr
      host: 127.0.0.1
      port: {ehr_port}
      ack_timeout_s: 60
      backoff_initial_s: 0.05
      backoff_max_s: 0.3
""")
    return cfg


async def test_sigkill_mid_delivery_loses_nothing_and_resends_the_same_control_id(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str, results: Results) -> None:
    cfg = write_config(tmp_path, kafka_bootstrap, kafka_topic, 0)
    async with LocalEhr(ack="none") as ehr:  # holds the message without an answer
        cfg.write_text(cfg.read_text().replace("port: 0\n", f"port: {ehr.port}\n"))
        procs: list[asyncio.subprocess.Process] = []

        async def start() -> None:
            procs.append(await asyncio.create_subprocess_exec(
                HL7GW, "serve", "--config", str(cfg), "--log-level", "warning",
                stderr=asyncio.subprocess.DEVNULL))

        try:
            await start()
            await results.send(1)
            await ehr.wait_for(1, WAIT_S)  # in flight: sent, no ACK yet
            os.kill(procs[0].pid, signal.SIGKILL)
            await procs[0].wait()
            await results.send(2)  # published while the gateway is dead
            ehr.ack = "AA"
            await start()
            await ehr.wait_for(3, WAIT_S)
            await eventually(lambda: _sent_in_file(tmp_path / "spool.db", 2),
                             "both rows sent after the restart")
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(proc.wait(), 20)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
        ids = [msh10(r) for r in ehr.received]
        assert ids[0] == ids[1] == expected_control_id(1)  # resent with the same MSH-10
        assert ids[2:] == [expected_control_id(2)]


async def _sent_in_file(path: Path, count: int) -> bool:
    conn = sqlite3.connect(path)
    try:
        statuses = [r[0] for r in conn.execute("SELECT status FROM outbound ORDER BY id")]
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return statuses == ["sent"] * count
