"""The spool against a real SQLite file: durability settings, duplicates, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from gateway.spool import Accepted, MessageFilter, PublishedMark, Rejected, Spool


def accepted(control_id: str = "M1", sha: str = "s1", sender: str = "LAB|HOSP") -> Accepted:
    return Accepted(listener="l", peer="p", sender=sender, control_id=control_id,
                    message_type="ADT^A01", sha256=sha, raw=b"MSH|raw", ack=b"ACK-" + sha.encode(),
                    event_id=f"ev-{control_id}-{sha}")


async def test_wal_and_full_sync(tmp_path: Path, spool: Spool) -> None:
    conn = sqlite3.connect(tmp_path / "spool.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert spool._conn is not None
    assert spool._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


async def test_stored_row_is_visible_to_another_connection(tmp_path: Path, spool: Spool) -> None:
    outcome = await spool.store(accepted())
    assert outcome.status == "stored"
    await spool.flush()  # with the journal, SQLite gets the row right after the ACK
    conn = sqlite3.connect(tmp_path / "spool.db")
    assert conn.execute("SELECT control_id, status FROM messages").fetchall() == [("M1", "pending")]
    conn.close()


async def test_same_id_same_bytes_is_a_duplicate_with_the_original_ack(spool: Spool) -> None:
    first = await spool.store(accepted())
    again = await spool.store(accepted())
    assert again.status == "duplicate"
    assert again.row_id == first.row_id
    assert again.ack == b"ACK-s1"
    assert await spool.depth() == 1


async def test_same_id_other_bytes_is_a_flagged_conflict(spool: Spool) -> None:
    await spool.store(accepted(sha="s1"))
    outcome = await spool.store(accepted(sha="s2"))
    assert outcome.status == "conflict"
    assert (await spool.counts())["conflict"] == 1
    assert await spool.depth() == 2


async def test_same_id_from_another_sender_is_not_a_duplicate(spool: Spool) -> None:
    await spool.store(accepted(sender="A|X"))
    assert (await spool.store(accepted(sender="B|Y"))).status == "stored"


async def test_duplicates_inside_one_batch_are_caught(spool: Spool) -> None:
    results = await asyncio.gather(*(spool.store(accepted()) for _ in range(5)))
    assert sorted(r.status for r in results) == ["duplicate"] * 4 + ["stored"]


async def test_concurrent_stores_share_commits(spool: Spool) -> None:
    await asyncio.gather(*(spool.store(accepted(control_id=f"M{i}")) for i in range(200)))
    assert spool.rows_committed == 200
    assert spool.commits < 200  # group commit: fewer fsyncs than rows


async def test_pending_in_order_and_mark_published(spool: Spool) -> None:
    for i in range(5):
        await spool.store(accepted(control_id=f"M{i}"))
    rows = await spool.pending(limit=3)
    assert [r.control_id for r in rows] == ["M0", "M1", "M2"]
    await spool.mark_published([PublishedMark(rows[0].id, "t", 0, 10, "pk"),
                                PublishedMark(rows[1].id, "t", 1, 11, "pk")])
    assert [r.control_id for r in await spool.pending()] == ["M2", "M3", "M4"]
    assert (await spool.counts())["published"] == 2
    assert spool.pending_rows == 3 == await spool.depth()


async def test_a_replay_moves_the_latest_publication_but_keeps_the_first(spool: Spool) -> None:
    await spool.store(accepted(control_id="M0"))
    (row,) = await spool.pending()
    await spool.mark_published([PublishedMark(row.id, "t", 2, 10)])
    assert await spool.replay(MessageFilter(ids=(row.id,))) == [row.id]
    await spool.mark_published([PublishedMark(row.id, "t2", 0, 99)])
    (info,) = await spool.find(MessageFilter(ids=(row.id,)))
    assert (info.kafka_topic, info.kafka_partition, info.kafka_offset) == ("t2", 0, 99)
    assert (info.first_topic, info.first_partition, info.first_offset) == ("t", 2, 10)


async def test_prune_deletes_only_old_published_rows_and_refusals(spool: Spool) -> None:
    import time

    for i in range(3):
        await spool.store(accepted(control_id=f"M{i}"))
    rows = await spool.pending()
    await spool.mark_published([PublishedMark(rows[0].id, "t", 0, 1)])
    await spool.store(Rejected(listener="l", peer="p", sender="|", control_id="", ack_code="AR",
                               err_code="100", reason="x", raw=b"x", ack=b"a"))
    assert await spool.prune(published_before=time.time() - 60,
                             rejected_before=time.time() - 60) == 0
    assert await spool.prune(published_before=time.time() + 1,
                             rejected_before=time.time() + 1) == 2
    counts = await spool.counts()
    assert counts.get("published", 0) == 0 and counts["rejected"] == 0
    assert await spool.depth() == 2  # pending rows are never pruned


async def test_rejected_rows_keep_raw_bytes(tmp_path: Path, spool: Spool) -> None:
    raw = b"\xff\xfe not hl7"
    await spool.store(Rejected(listener="l", peer="p", sender="|", control_id="", ack_code="AR",
                               err_code="100", reason="no MSH", raw=raw, ack=b"ack"))
    await spool.flush()
    conn = sqlite3.connect(tmp_path / "spool.db")
    assert conn.execute("SELECT raw, reason FROM rejected").fetchone() == (raw, "no MSH")
    conn.close()


async def test_rows_survive_reopen(tmp_path: Path) -> None:
    s = Spool(tmp_path / "again.db")
    await s.start()
    await s.store(accepted())
    await s.stop()
    s2 = Spool(tmp_path / "again.db")
    await s2.start()
    try:
        assert [r.control_id for r in await s2.pending()] == ["M1"]
        assert (await s2.store(accepted())).status == "duplicate"
    finally:
        await s2.stop()


async def test_writer_thread_mode_keeps_the_same_guarantees(tmp_path: Path) -> None:
    s = Spool(tmp_path / "thread.db", inline=False)
    await s.start()
    try:
        results = await asyncio.gather(*(s.store(accepted(control_id=f"T{i % 50}"))
                                         for i in range(100)))
        assert sorted(r.status for r in results).count("duplicate") == 50
        assert s.commits < 100
        assert await s.depth() == 50 == s.pending_rows
    finally:
        await s.stop()
