"""Spool counts for the Interfaces page and the dashboard's history, on a real SQLite file.

Rows are written with chosen ``received_at``/``published_at`` times straight into a spool
file the real ``Spool`` created (its schema and indexes), so the 1 h and 24 h windows and
the per-minute buckets can be checked to the row.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.console.interfaces_stats import (
    SenderTraffic,
    TrafficTally,
    per_minute,
    prime_sql,
    read_stats,
)
from gateway.spool import Spool

NOW = 1_800_000_000.0  # a fixed "now" (2027-01-15), a multiple of 60


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    spool = Spool(tmp_path / "spool.db", journal_dir=None)
    await spool.start()
    await spool.stop()
    return spool.path


def put(path: Path, *, at: float, sender: str = "SUNLAB|RIVERSIDE^1.2.3^ISO",
        kind: str = "ADT^A01", listener: str = "lab", peer: str = "10.0.0.1:4000",
        published_at: float | None = None, status: str = "published") -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO messages (received_at, listener, peer, sender, control_id,"
            " message_type, sha256, raw, ack, event_id, status, published_at)"
            " VALUES (?, ?, ?, ?, 'C', ?, 'x', x'00', x'00', 'e', ?, ?)",
            (at, listener, peer, sender, kind, status, published_at))


def refuse(path: Path, *, at: float, code: str = "AR", sender: str = "OTHER|CLINIC",
           peer: str = "10.0.0.2:5000") -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO rejected (received_at, listener, peer, sender, control_id, ack_code,"
            " err_code, reason, raw, ack) VALUES (?, 'lab', ?, ?, 'R', ?, '200', 'no',"
            " x'00', x'00')", (at, peer, sender, code))


async def test_counts_per_sender_split_into_the_last_hour_and_day(db: Path) -> None:
    put(db, at=NOW - 30)                                   # last hour
    put(db, at=NOW - 1800, kind="ORU^R01")                 # last hour
    put(db, at=NOW - 7200, peer="10.0.0.1:3999")           # last day only
    put(db, at=NOW - 2 * 86400)                            # too old: not counted
    put(db, at=NOW - 60, listener="other")                 # another listener
    refuse(db, at=NOW - 10)
    refuse(db, at=NOW - 5000, code="AE")
    refuse(db, at=NOW - 20, sender="SUNLAB|RIVERSIDE^1.2.3^ISO", peer="10.0.0.1:4001")

    found = await read_stats(db, TrafficTally().update, NOW)
    by = {(t.listener, t.sender): t for t in found}
    sun = by["lab", "SUNLAB|RIVERSIDE^1.2.3^ISO"]
    assert (sun.accepted_1h, sun.accepted_24h) == (2, 3)
    assert sun.types_1h == {"ADT^A01": 1, "ORU^R01": 1}
    assert sun.types_24h == {"ADT^A01": 2, "ORU^R01": 1}
    assert sun.refused_1h == sun.refused_24h == {"AR": 1}
    assert (sun.first_at, sun.last_at) == (NOW - 7200, NOW - 20)
    assert sun.last_peer == "10.0.0.1:4001"  # the refused one came last, on a new connection
    assert sun.total_24h == 4
    other = by["lab", "OTHER|CLINIC"]
    assert other.accepted_24h == 0
    assert other.refused_1h == {"AR": 1} and other.refused_24h == {"AR": 1, "AE": 1}
    assert other.last_peer == "10.0.0.2:5000"
    assert by["other", "SUNLAB|RIVERSIDE^1.2.3^ISO"].accepted_24h == 1
    assert len(found) == 3


async def test_per_minute_history_and_the_depth_walked_back(db: Path) -> None:
    start = NOW + 60 - 5 * 60  # five minutes ending with the one NOW is in
    put(db, at=start + 10, published_at=start + 70)        # minute 0 in, minute 1 out
    put(db, at=start + 20, published_at=start + 75)
    put(db, at=start + 130, status="pending")              # minute 2, still pending
    put(db, at=start - 3600 * 2, published_at=start + 200)  # an old row published late
    refuse(db, at=start + 250)                              # minute 4
    traffic = await read_stats(db, lambda c, now: per_minute(c, now, minutes=5), NOW)
    assert traffic.start == start
    assert traffic.received == [2, 0, 1, 0, 0]
    assert traffic.published == [0, 2, 0, 1, 0]
    assert traffic.rejected == [0, 0, 0, 0, 1]
    # at the end of minute 0: the two new rows and the old one; then two published, ...
    assert traffic.depth == [3, 1, 2, 1, 1]


async def test_a_late_publish_beyond_the_lookback_is_not_counted(db: Path) -> None:
    put(db, at=NOW - 10 * 3600, published_at=NOW - 30)
    traffic = await read_stats(db, lambda c, now: per_minute(c, now, minutes=5), NOW)
    assert sum(traffic.published) == 0
    wider = await read_stats(db, lambda c, now: per_minute(
        c, now, minutes=5, publish_lookback_s=11 * 3600), NOW)
    assert sum(wider.published) == 1


def by_sender(found: list[SenderTraffic]) -> dict[str, SenderTraffic]:
    return {t.sender: t for t in found}


async def test_later_updates_count_only_new_rows_and_drop_the_old_day(db: Path) -> None:
    tally = TrafficTally()
    put(db, at=NOW - 100)
    first = by_sender(await read_stats(db, tally.update, NOW))
    assert first["SUNLAB|RIVERSIDE^1.2.3^ISO"].accepted_24h == 1
    put(db, at=NOW + 5, kind="ORU^R01", peer="10.0.0.1:4010")
    put(db, at=NOW - 3 * 3600)  # a journal replay after a crash: an old time, a new id
    refuse(db, at=NOW + 6, code="AE")
    later = by_sender(await read_stats(db, tally.update, NOW + 10))
    sun = later["SUNLAB|RIVERSIDE^1.2.3^ISO"]
    assert (sun.accepted_1h, sun.accepted_24h) == (2, 3)
    assert sun.types_24h == {"ADT^A01": 2, "ORU^R01": 1}
    assert (sun.last_at, sun.last_peer) == (NOW + 5, "10.0.0.1:4010")
    assert later["OTHER|CLINIC"].refused_1h == {"AE": 1}
    # the same as a fresh read of the whole day
    fresh = by_sender(await read_stats(db, TrafficTally().update, NOW + 10))
    assert fresh == later
    # two hours on, the last hour is empty; a day on, the senders are gone
    quiet = by_sender(await read_stats(db, tally.update, NOW + 7200))
    assert quiet["SUNLAB|RIVERSIDE^1.2.3^ISO"].accepted_1h == 0
    assert quiet["SUNLAB|RIVERSIDE^1.2.3^ISO"].accepted_24h == 3
    assert await read_stats(db, tally.update, NOW + 2 * 86400) == []


async def test_a_replaced_spool_file_is_read_again(db: Path, tmp_path: Path) -> None:
    tally = TrafficTally()
    for n in range(3):
        put(db, at=NOW - n)
    assert len(await read_stats(db, tally.update, NOW)) == 1
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM messages")
    put(db, at=NOW, sender="NEW|ONE")  # ids start again below the last one counted
    found = await read_stats(db, tally.update, NOW)
    assert [t.sender for t in found] == ["NEW|ONE"]


async def test_the_first_read_uses_the_received_at_indexes(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        for table in ("messages", "rejected"):
            plan = " ".join(str(r[-1]) for r in conn.execute(
                f"EXPLAIN QUERY PLAN {prime_sql(table)}", (NOW, 10)))
            assert f"USING INDEX {table}_received" in plan, plan
