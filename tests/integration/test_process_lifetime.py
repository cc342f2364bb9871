"""The mapping worker neither outlives the gateway (16.7) nor holds up its stop (16.6).

Seen before the fixes: a SIGKILL of ``hl7gw serve`` left the mapping worker and the
multiprocessing resource tracker running, orphaned, forever; and SIGTERM waited for the
worker's batch in progress (4 minutes for a 12,000-line report).
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

from connectors.settings import KafkaSettings
from gateway.ack import ack_code_of
from gateway.config import GatewaySettings, HttpSettings, ListenerSettings, SpoolSettings
from gateway.mapping import Mapped, MappingPool, MapRequest, ProfileSnapshot, map_batch
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.integration.conftest import bounded, free_port, read_records

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

ROOT = Path(__file__).resolve().parents[2]
HL7GW = str(Path(sys.executable).with_name("hl7gw"))
SAMPLE = split_messages((ROOT / "samples" / "adt_a01.hl7").read_bytes())[0]
ACCEPTED = ("AA", "CA")
BUSY_MARK = "HL7GW_TEST_BUSY_MARK"


def slow_map_batch(requests: list[MapRequest], snapshot: ProfileSnapshot) -> list[Mapped]:
    """Runs in the worker: says it is busy, then maps as slowly as a huge report does."""
    Path(os.environ[BUSY_MARK]).touch()
    time.sleep(120)
    return map_batch(requests, snapshot)


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isascii() and entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] != "Z":
                found.append(int(entry.name))
    return found


def read_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid``, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that never comes counts as gone)."""
    stat = read_stat(pid)
    return stat is not None and stat[0] != "Z"


async def wait_port(port: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"gateway did not listen on {port}")


@bounded(120)
async def test_sigkill_of_the_gateway_takes_its_worker_and_resource_tracker_along(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str) -> None:
    mllp = free_port()
    config = tmp_path / "gw.yaml"
    config.write_text(f"""\
listeners:
  - name: kill
    port: {mllp}
http:
  port: {free_port()}
spool:
  path: {tmp_path / "spool.db"}
mapping_workers: 1
kafka:
  bootstrap_servers: {kafka_bootstrap}
  topic: {kafka_topic}
""")
    gateway = await asyncio.create_subprocess_exec(
        HL7GW, "serve", "--config", str(config), "--log-level", "warning",
        stderr=asyncio.subprocess.DEVNULL)
    spawned: list[int] = []
    try:
        await wait_port(mllp)
        async with MllpClient("127.0.0.1", mllp, timeout=30) as client:
            assert ack_code_of((await client.send(SAMPLE)).decode()) in ACCEPTED
        deadline = time.monotonic() + 30
        while len(spawned) < 2 and time.monotonic() < deadline:  # worker + resource tracker
            spawned = children(gateway.pid)
            await asyncio.sleep(0.1)
        assert len(spawned) >= 2, spawned
        os.kill(gateway.pid, signal.SIGKILL)
        await asyncio.wait_for(gateway.wait(), 10)
        for _ in range(150):  # up to 15 s
            if not any(alive(p) for p in spawned):
                break
            await asyncio.sleep(0.1)
        assert [p for p in spawned if alive(p)] == []
    finally:
        if gateway.returncode is None:
            gateway.kill()
            await gateway.wait()
        for pid in spawned:  # only if the assertion above failed: leave nothing behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@bounded(180)
async def test_stop_does_not_wait_for_a_slow_batch_and_its_rows_go_out_after_restart(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    mark = tmp_path / "busy"
    monkeypatch.setenv(BUSY_MARK, str(mark))  # inherited by the spawned worker
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="slow", port=0)], http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic),
        drain_timeout_s=3.0)
    slow = MappingPool(1, batch_fn=slow_map_batch)
    gateway = GatewayService(settings, http=False, mapping=slow)
    await gateway.start()
    try:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=30) as client:
            assert ack_code_of((await client.send(SAMPLE)).decode()) in ACCEPTED
        for _ in range(600):  # the worker took the batch (up to 60 s on a loaded machine)
            if mark.exists():
                break
            await asyncio.sleep(0.1)
        assert mark.exists()
        workers = [int(p.pid or 0)
                   for p in slow._pool._processes.values()]  # type: ignore[union-attr]
        began = time.monotonic()
        await gateway.stop()
        took = time.monotonic() - began
    except BaseException:
        await gateway.stop()
        raise
    # The deadline, then SIGTERM and up to 5 s for the worker to go.
    assert took < settings.drain_timeout_s + 8, f"stop took {took:.1f}s"
    assert not [p for p in workers if alive(p)]
    with sqlite3.connect(tmp_path / "spool.db") as conn:
        [(status,)] = conn.execute("SELECT status FROM messages").fetchall()
    conn.close()
    assert status == "pending"
    # After the restart the row is mapped and published like any other.
    async with GatewayService(settings, http=False) as again:
        for _ in range(300):
            if not await again.spool.depth():
                break
            await asyncio.sleep(0.2)
        assert await again.spool.depth() == 0
    [record] = await read_records(kafka_bootstrap, kafka_topic, 1)
    assert b"Bundle" in (record.value or b"")
