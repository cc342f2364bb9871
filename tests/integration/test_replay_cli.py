"""``hl7gw replay`` as an operator runs it: a separate process on the spool file of a
gateway that is running (real MLLP, SQLite in WAL mode, Kafka), which republishes the
queued rows with new event ids ("-r1")."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from gateway.ack import ack_code_of
from gateway.config import GatewaySettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.integration.conftest import bounded
from tests.support import REPO, SAMPLES, with_control_id

pytestmark = pytest.mark.integration

HL7GW = str(Path(sys.executable).with_name("hl7gw"))
A01 = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
A04 = split_messages((SAMPLES / "adt_a04.hl7").read_bytes())[0]


async def hl7gw(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """Run the hl7gw command in a subprocess without blocking the gateway's event loop."""
    proc = await asyncio.create_subprocess_exec(
        HL7GW, *args, cwd=REPO, env=dict(os.environ), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
    return proc.returncode or 0, out.decode(), err.decode()


def rows(spool: Path) -> dict[str, tuple[str, str, int]]:
    """control id -> (message type, status, replays), read from the spool file."""
    conn = sqlite3.connect(spool)
    try:
        return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
            "SELECT control_id, message_type, status, replays FROM messages")}
    finally:
        conn.close()


class Topic:
    """One consumer for the whole test; ``until(n)`` waits for the n-th record overall."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.records: list[Any] = []

    async def until(self, count: int, settle: float = 0.0) -> list[Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(self.records) < count:
            assert loop.time() < deadline, f"{len(self.records)} of {count} records"
            for batch in (await self.consumer.getmany(timeout_ms=200)).values():
                self.records.extend(batch)
        settle_until = loop.time() + settle
        while loop.time() < settle_until:  # anything extra that should not be there
            for batch in (await self.consumer.getmany(timeout_ms=200)).values():
                self.records.extend(batch)
        return self.records


def config_file(tmp_path: Path, settings: GatewaySettings, audit: Path | None = None) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"""\
spool:
  path: {settings.spool.path}
kafka:
  bootstrap_servers: {settings.kafka.bootstrap_servers}
  topic: {settings.kafka.topic}
console:
  audit_path: {audit or tmp_path / "audit.jsonl"}
""")
    return path


async def spool_drained(gateway: GatewayService, within: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await gateway.spool.depth():
        assert loop.time() < deadline, "never published"
        await asyncio.sleep(0.1)


def audit_lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] \
        if path.exists() else []


@bounded(240)
async def test_replay_republishes_matching_rows_with_new_event_ids(
        tmp_path: Path, gateway_settings: GatewaySettings, kafka_bootstrap: str,
        kafka_topic: str) -> None:
    cfg = config_file(tmp_path, gateway_settings)
    spool = gateway_settings.spool.path
    consumer = AIOKafkaConsumer(kafka_topic, bootstrap_servers=kafka_bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    topic = Topic(consumer)
    try:
        async with GatewayService(gateway_settings, http=False) as gateway:
            async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
                for message in (with_control_id(A01, "R1"), with_control_id(A01, "R2"),
                                with_control_id(A04, "R3")):
                    assert ack_code_of((await client.send(message)).decode()) == "CA"
            first = await topic.until(3)
            original = {dict(r.headers)["ce_hl7spoolrow"].decode():
                        dict(r.headers)["ce_id"].decode() for r in first}
            # A record can reach the consumer before the producer's acknowledgement marks
            # its row published: wait for the spool, with a deadline.
            await spool_drained(gateway)
            assert {cid: (s, n) for cid, (_, s, n) in rows(spool).items()} == {
                "R1": ("published", 0), "R2": ("published", 0), "R3": ("published", 0)}

            # An empty filter is refused; nothing changes.
            code, out, err = await hl7gw("replay", "--config", str(cfg), "--yes")
            assert code == 2 and "no filter given" in err and "--all" in err

            # A dry run shows what matches and changes nothing.
            code, out, err = await hl7gw("replay", "--config", str(cfg), "--type", "ADT^A01",
                                         "--since", "1h", "--dry-run")
            assert code == 0, err
            assert "2 message(s) match (2 published)" in out
            assert "dry run: nothing changed" in out
            # Declining the confirmation changes nothing either.
            code, out, err = await hl7gw("replay", "--config", str(cfg), "--type", "ADT^A01",
                                         stdin=b"n\n")
            assert code == 1 and "Replay 2 message(s)?" in err
            assert all(n == 0 for _, _, n in rows(spool).values())
            assert audit_lines(tmp_path) == []  # nothing replayed, nothing recorded
            await topic.until(3, settle=1.5)
            assert len(topic.records) == 3

            # The real thing: the running gateway republishes the two A01 rows.
            code, out, err = await hl7gw("replay", "--config", str(cfg), "--type", "ADT^A01",
                                         "--status", "published", "--yes", "--timeout", "60")
            assert code == 0, out + err
            assert "queued 2 message(s)" in out
            assert "2 published, 0 failed, 0 still pending" in out
            assert rows(spool) == {"R1": ("ADT^A01", "published", 1),
                                   "R2": ("ADT^A01", "published", 1),
                                   "R3": ("ADT^A04", "published", 0)}
            # The same audit line the console writes, with the OS user as the actor.
            (entry,) = audit_lines(tmp_path)
            assert set(entry) == {"time", "user", "role", "action", "peer", "targets",
                                  "filter"}
            assert entry["action"] == "replay" and entry["user"] == getpass.getuser()
            assert entry["role"] == "cli" and entry["peer"].startswith("cli@")
            assert entry["filter"] == {"message_type": "ADT^A01", "status": "published"}
            assert sorted(entry["targets"]) == sorted(int(r) for r in original)[:2]
            records = await topic.until(5, settle=1.5)
        assert len(records) == 5
        again = {dict(r.headers)["ce_hl7spoolrow"].decode(): dict(r.headers)["ce_id"].decode()
                 for r in records[3:]}
        assert len(again) == 2
        for row_id, event_id in again.items():
            assert event_id == f"{original[row_id]}-r1"
    finally:
        await consumer.stop()


@bounded(120)
async def test_replay_without_a_running_gateway_times_out_with_exit_1(
        tmp_path: Path, gateway_settings: GatewaySettings) -> None:
    cfg = config_file(tmp_path, gateway_settings)
    async with GatewayService(gateway_settings, http=False) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
            assert ack_code_of((await client.send(A01)).decode()) == "CA"
        await spool_drained(gateway)
    # The gateway is stopped: the queued row waits in the spool, and the command says so.
    code, out, err = await hl7gw("replay", "--config", str(cfg), "--sender", "EPICADT",
                                 "--yes", "--timeout", "1.5")
    assert code == 1
    assert "0 published, 0 failed, 1 still pending" in out
    assert "is the gateway running" in err
    assert [v[1:] for v in rows(gateway_settings.spool.path).values()] == [("pending", 1)]
    # Unknown sender: nothing matches, nothing queued.
    code, out, _ = await hl7gw("replay", "--config", str(cfg), "--sender", "NOBODY|X", "--yes")
    assert code == 0 and "0 message(s) match" in out


@bounded(120)
async def test_replay_refuses_when_the_audit_log_cannot_be_written(
        tmp_path: Path, gateway_settings: GatewaySettings) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the audit log's folder should be")
    cfg = config_file(tmp_path, gateway_settings, audit=blocker / "audit.jsonl")
    async with GatewayService(gateway_settings, http=False) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
            assert ack_code_of((await client.send(A01)).decode()) == "CA"
        await spool_drained(gateway)
        code, out, err = await hl7gw("replay", "--config", str(cfg), "--sender", "EPICADT",
                                     "--yes", "--no-wait")
    assert code == 2, out + err
    assert "cannot write the audit log" in err and "Traceback" not in err
    assert [v[1:] for v in rows(gateway_settings.spool.path).values()] == [("published", 0)]
