"""Spool faults under a running gateway: real MLLP sockets, real SQLite files, real Kafka.

- A write that fails (a trigger made by the test RAISEs on UPDATE of ``messages``, so
  marking rows published fails) must not stop intake: senders keep getting AA, and once
  the fault is gone the publisher settles every row without a restart.
- A full disk: while the spool cannot grow, intake answers AE (CE in enhanced mode) with
  ERR 207, so senders keep their message and resend; every message that got AA is in the
  spool; once space is freed intake ACKs again, without a restart. Twice: on a tmpfs of
  4 MiB mounted by the test (needs root; skipped where mount is not permitted), and
  with SQLite's ``PRAGMA max_page_count``, which gives the same SQLITE_FULL everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.ack import ack_code_of
from gateway.config import GatewaySettings, SpoolSettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.integration.conftest import bounded, read_records
from tests.support import sample_path, with_control_id, with_msh

pytestmark = pytest.mark.integration

ENHANCED = split_messages(sample_path("adt_a01").read_bytes())[0]  # MSH-15 AL: CA/CE
ORIGINAL = with_msh(ENHANCED, f15="", f16="")  # original mode: AA/AE


def err_code(ack: bytes) -> str:
    """ERR-3.1 of an answer (the HL7 error code)."""
    err = next(s for s in ack.decode().split("\r") if s.startswith("ERR")).split("|")
    return err[3].split("^")[0]


def spooled_ids(path: Path) -> set[str]:
    """Control ids of every accepted row, read with a connection of the test's own."""
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT control_id FROM messages")}
    finally:
        conn.close()


async def eventually(check: Callable[[], object], what: str, seconds: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@bounded(180)
async def test_intake_keeps_acking_after_a_failed_update_and_publishing_resumes(
        gateway_settings: GatewaySettings, kafka_bootstrap: str, kafka_topic: str,
        caplog: pytest.LogCaptureFixture) -> None:
    path = gateway_settings.spool.path
    caplog.set_level(logging.WARNING, logger="hl7gw.publisher")
    async with GatewayService(gateway_settings, http=False) as gateway:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("CREATE TRIGGER refuse_update BEFORE UPDATE ON messages"
                     " BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END")
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
            first = await client.send(with_control_id(ORIGINAL, "FAULT0"))
            assert ack_code_of(first.decode()) == "AA"
            # The record reaches Kafka; marking its row published, right after, fails.
            await read_records(kafka_bootstrap, kafka_topic, 1)
            # Before the fix the writer connection was left inside the failed transaction
            # and every later commit failed: these were answered AE 207.
            for i in range(1, 6):
                ack = await client.send(with_control_id(ORIGINAL, f"FAULT{i}"))
                assert ack_code_of(ack.decode()) == "AA", ack
            await eventually(lambda: any("publish failed" in r.getMessage()
                                         for r in caplog.records),
                             "the publisher to log the failed mark and retry")
        conn.execute("DROP TRIGGER refuse_update")
        conn.close()
        # The publisher retries (it did not die on the spool error) and settles every row.
        gateway.publisher.wake()
        for _ in range(600):
            if await gateway.spool.depth() == 0:
                break
            await asyncio.sleep(0.1)
        assert await gateway.spool.depth() == 0
    records = await read_records(kafka_bootstrap, kafka_topic, 6)
    assert len({dict(r.headers)["ce_id"] for r in records}) == 6  # each message went out


async def fill_then_free(settings: GatewaySettings, fill: Callable[[GatewayService], None],
                         free: Callable[[GatewayService], None]) -> None:
    """The disk-full scenario; ``fill`` leaves the spool no room, ``free`` gives it back."""
    acked: list[str] = []
    async with GatewayService(settings, http=False) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:

            async def send(control_id: str, message: bytes = ORIGINAL) -> bytes:
                ack = await client.send(with_control_id(message, control_id))
                if ack_code_of(ack.decode()) in ("AA", "CA"):
                    acked.append(control_id)
                return ack

            for i in range(3):
                assert ack_code_of((await send(f"OK{i}")).decode()) == "AA"
            fill(gateway)
            for i in range(2000):  # until the spool cannot take one more
                refused = await send(f"FILL{i}")
                if ack_code_of(refused.decode()) != "AA":
                    break
            assert ack_code_of(refused.decode()) == "AE", refused
            assert err_code(refused) == "207"
            enhanced = await send("FULL-ENH", ENHANCED)
            assert (ack_code_of(enhanced.decode()), err_code(enhanced)) == ("CE", "207")
            assert ack_code_of((await send("FULL-AGAIN")).decode()) == "AE"

            free(gateway)
            # No restart: the same gateway, the same connection.
            for i in range(3):
                assert ack_code_of((await send(f"AFTER{i}")).decode()) == "AA"
            assert ack_code_of((await send("AFTER-ENH", ENHANCED)).decode()) == "CA"
    assert len(acked) > 7  # some FILL messages were taken before the spool was full
    assert set(acked) <= spooled_ids(settings.spool.path)  # no ACKed message lost
    assert "FULL-AGAIN" not in spooled_ids(settings.spool.path)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test (room for two 1 MiB journal segments and the
    spool), unmounted afterwards."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs",
                               str(mnt)], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command here; the max_page_count variant covers disk full")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()}); "
                    "the max_page_count variant covers disk full")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], timeout=30)


@bounded(180)
async def test_a_full_disk_answers_207_then_recovers_when_space_is_freed(
        gateway_settings: GatewaySettings, small_disk: Path) -> None:
    ballast = small_disk / "ballast"
    # The journal's segments are written in full when made: a full disk refuses the
    # SQLite insert behind it, and intake answers AE 207 until there is room again.
    settings = gateway_settings.model_copy(update={"spool": SpoolSettings(
        path=small_disk / "spool.db", journal_segment_mb=1)})

    def fill(_: GatewayService) -> None:
        stat = os.statvfs(small_disk)
        room = stat.f_bavail * stat.f_frsize
        ballast.write_bytes(b"\0" * max(room - 48 * 1024, 0))  # leave a few commits' worth

    await fill_then_free(settings, fill, lambda _: ballast.unlink())


@bounded(180)
async def test_a_full_database_answers_207_then_recovers_without_a_mount(
        gateway_settings: GatewaySettings) -> None:
    def fill(gateway: GatewayService) -> None:
        conn = gateway.spool._conn  # max_page_count is a setting of the writer connection
        assert conn is not None
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 8}")

    def free(gateway: GatewayService) -> None:
        assert gateway.spool._conn is not None
        gateway.spool._conn.execute("PRAGMA max_page_count = 1073741823")

    await fill_then_free(gateway_settings, fill, free)
