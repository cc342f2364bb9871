"""The intake journal under SIGKILL, with real processes, sockets and Kafka.

5,000 messages stream over 4 MLLP connections into an ``hl7gw serve`` subprocess, which is
killed with SIGKILL at 20 random moments and started again on the same spool and journal
each time. Each sender resends the message whose ACK it did not get, as MLLP senders do.
Promised (docs/journal.md): every acknowledged message is published; one spool row and one
event id per message (a resend of a message already journaled gets its original ACK);
a record may repeat on Kafka, with the same event id, only if the process died between
Kafka's acknowledgement and the spool's update.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
from pathlib import Path

import pytest

from gateway.ack import ack_code_of
from gateway.mllp.client import MllpClient, MllpClientError
from tests.integration.conftest import bounded, free_port
from tests.integration.test_crash_and_outage import (
    ACCEPTED,
    numbered,
    read_all,
    start_gateway,
    wait_port,
    write_config,
)

pytestmark = pytest.mark.integration

TOTAL, CONNECTIONS, KILLS = 5000, 4, 20


@bounded(900)
async def test_sigkill_at_20_random_moments_loses_and_doubles_nothing_acked(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    # The moments, as numbers of messages acknowledged: spread over the whole stream.
    moments = sorted(rng.sample(range(50, TOTAL - 50), KILLS))
    mllp = free_port()
    cfg = write_config(tmp_path, kafka_bootstrap, kafka_topic, mllp)
    gateway = await start_gateway(cfg)
    await wait_port(mllp)
    up = asyncio.Event()
    up.set()
    acked: dict[int, str] = {}
    resends = 0
    progressed = asyncio.Event()  # set at every ACK: the killer waits for its moment

    async def sender(first: int) -> None:
        nonlocal resends
        mine = list(range(first, TOTAL, CONNECTIONS))
        pos = 0
        while pos < len(mine):
            await up.wait()
            try:
                async with MllpClient("127.0.0.1", mllp, timeout=15) as client:
                    while pos < len(mine):
                        ack = (await client.send(numbered(mine[pos]))).decode()
                        assert ack_code_of(ack) in ACCEPTED, ack
                        acked[mine[pos]] = ack
                        progressed.set()
                        pos += 1
            except (MllpClientError, OSError):
                resends += 1  # the message at ``pos`` is sent again
                await asyncio.sleep(0.02)

    async def killer() -> None:
        nonlocal gateway
        for moment in moments:
            while len(acked) < moment:
                progressed.clear()
                await progressed.wait()
            os.kill(gateway.pid, signal.SIGKILL)
            up.clear()
            await asyncio.wait_for(gateway.wait(), 20)
            gateway = await start_gateway(cfg)
            await wait_port(mllp, within=60)
            up.set()

    try:
        await asyncio.gather(killer(), *(sender(k) for k in range(CONNECTIONS)))
        records = await read_all(kafka_bootstrap, kafka_topic, expect_ids=TOTAL)
    finally:
        if gateway.returncode is None:
            gateway.send_signal(signal.SIGTERM)
            await asyncio.wait_for(gateway.wait(), 30)
    assert len(acked) == TOTAL, f"seed {seed}"
    assert resends >= KILLS, f"seed {seed}: the kills did not cut the senders off"
    conn = sqlite3.connect(tmp_path / "spool.db")
    spooled = conn.execute("SELECT id, control_id, status, event_id FROM messages").fetchall()
    conn.close()
    # One row per message: no resend made a second one, none was lost.
    assert sorted(c for _, c, _, _ in spooled) == [f"CRASH{i:05d}" for i in range(TOTAL)], \
        f"seed {seed}"
    assert {s for _, _, s, _ in spooled} == {"published"}, f"seed {seed}"
    events = {ce for _, ce, _ in records}
    assert events == {e for _, _, _, e in spooled}, f"seed {seed}"  # each one on Kafka
    assert {row for row, _, _ in records} == {str(i) for i, _, _, _ in spooled}
    # Each repeat carries its row's event id; repeats stay a small share.
    by_row = {str(i): e for i, _, _, e in spooled}
    assert all(by_row[row] == ce for row, ce, _ in records), f"seed {seed}"
    assert len(records) - TOTAL <= KILLS * 200, f"seed {seed}"
