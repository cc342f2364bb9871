"""A spool whose statements fail (a trigger that raises, a full database) stays usable.

Over real SQLite files. The faults are made with SQLite's own means: a trigger created by
the test that RAISEs on UPDATE or DELETE of ``messages``, and ``PRAGMA max_page_count``,
which makes SQLite answer SQLITE_FULL ("database or disk is full") exactly as a full disk
does, without needing a file system of limited size.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.errors import SpoolError
from gateway.spool import Accepted, MessageFilter, PublishedMark, Rejected, Spool


def row(control_id: str, size: int = 10) -> Accepted:
    return Accepted(listener="l", peer="p", sender="LAB|HOSP", control_id=control_id,
                    message_type="ADT^A01", sha256=control_id, raw=b"M" * size,
                    ack=b"ACK" + control_id.encode(), event_id=f"ev-{control_id}")


def external(path: Path, sql: str) -> None:
    """Run ``sql`` on a connection of its own, as an operator (or a fault) would."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executescript(sql)
    finally:
        conn.close()


REFUSE_UPDATE = """CREATE TRIGGER refuse_update BEFORE UPDATE ON messages
                   BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END;"""
REFUSE_DELETE = """CREATE TRIGGER refuse_delete BEFORE DELETE ON messages
                   BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END;"""


@pytest.fixture(params=[True, False], ids=["inline", "writer-thread"])
async def either_spool(request: pytest.FixtureRequest, tmp_path: Path
                       ) -> AsyncIterator[Spool]:
    """A started spool, with the commit on the event loop's thread or on its own thread."""
    s = Spool(tmp_path / "spool.db", inline=request.param)
    await s.start()
    yield s
    await s.stop()


async def test_a_failed_update_when_publishing_leaves_the_spool_usable(
        tmp_path: Path, either_spool: Spool) -> None:
    spool = either_spool
    first = await spool.store(row("1"))
    external(tmp_path / "spool.db", REFUSE_UPDATE)
    with pytest.raises(SpoolError, match=r"mark published failed.*simulated write failure"):
        await spool.mark_published([PublishedMark(first.row_id, "t", 0, 1)])
    # Before the fix the writer connection stayed inside the failed transaction: this
    # store failed with "cannot start a transaction within a transaction".
    assert (await spool.store(row("2"))).status == "stored"
    external(tmp_path / "spool.db", "DROP TRIGGER refuse_update;")
    await spool.mark_published([PublishedMark(first.row_id, "t", 0, 1)])
    assert [r.control_id for r in await spool.pending()] == ["2"]
    assert spool.pending_rows == 1 == await spool.depth()


async def test_a_failed_delete_when_pruning_leaves_the_spool_usable(
        tmp_path: Path, either_spool: Spool) -> None:
    spool = either_spool
    first = await spool.store(row("1"))
    await spool.mark_published([PublishedMark(first.row_id, "t", 0, 1)])
    external(tmp_path / "spool.db", REFUSE_DELETE)
    later = time.time() + 60
    with pytest.raises(SpoolError, match="prune failed"):
        await spool.prune(published_before=later, rejected_before=later)
    assert (await spool.store(row("2"))).status == "stored"
    external(tmp_path / "spool.db", "DROP TRIGGER refuse_delete;")
    assert await spool.prune(published_before=later, rejected_before=later) == 1
    assert (await spool.counts())["published"] == 0


async def test_failed_marks_raise_spool_errors_and_keep_the_row_pending(
        tmp_path: Path, either_spool: Spool) -> None:
    spool = either_spool
    first = await spool.store(row("1"))
    external(tmp_path / "spool.db", REFUSE_UPDATE)
    with pytest.raises(SpoolError, match="mark failed failed"):
        await spool.mark_failed(first.row_id, "mapping failed")
    with pytest.raises(SpoolError, match="record a failure failed"):
        await spool.record_failure(first.row_id, "kafka down")
    assert spool.pending_rows == 1  # the tally moves only for changes that committed
    assert (await spool.store(row("2"))).status == "stored"
    assert spool.pending_rows == 2 == await spool.depth()


async def test_a_failed_replay_chunk_is_rolled_back_and_the_spool_goes_on(
        tmp_path: Path, spool: Spool) -> None:
    first = await spool.store(row("1"))
    await spool.mark_published([PublishedMark(first.row_id, "t", 0, 1)])
    external(tmp_path / "spool.db", REFUSE_UPDATE)
    with pytest.raises(SpoolError, match="replay failed"):
        await spool.replay(MessageFilter())
    assert (await spool.store(row("2"))).status == "stored"
    external(tmp_path / "spool.db", "DROP TRIGGER refuse_update;")
    assert await spool.replay(MessageFilter()) == [first.row_id]


async def test_reads_raise_spool_errors_too(tmp_path: Path, spool: Spool) -> None:
    await spool.store(row("1"))
    external(tmp_path / "spool.db", "ALTER TABLE rejected RENAME TO moved_away;")
    with pytest.raises(SpoolError, match=r"search refused messages failed.*no such table"):
        await spool.find_rejected(MessageFilter())
    with pytest.raises(SpoolError, match="count messages failed"):
        await spool.counts()
    assert [m.control_id for m in await spool.find(MessageFilter())] == ["1"]


def fill_up(spool: Spool) -> None:
    """Let the spool's writer connection grow by no more than a few pages."""
    conn = spool._conn  # the test reaches in: the limit is a per-connection setting
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")


def free_up(spool: Spool) -> None:
    assert spool._conn is not None
    spool._conn.execute("PRAGMA max_page_count = 1073741823")


async def test_a_full_database_refuses_stores_then_recovers_without_restart(
        either_spool: Spool, caplog: pytest.LogCaptureFixture) -> None:
    spool = either_spool
    caplog.set_level(logging.WARNING, logger="hl7gw.spool")
    kept = [await spool.store(row(f"ok{i}", 2000)) for i in range(3)]
    fill_up(spool)
    stored: list[str] = []
    with pytest.raises(SpoolError) as full:
        for i in range(50):
            await spool.store(row(f"full{i}", 2000))
            stored.append(f"full{i}")
    message = str(full.value)
    assert "SQLITE_FULL" in message and "free space" in message and "AE" in message
    with pytest.raises(SpoolError, match="SQLITE_FULL"):  # still full: still refused
        await spool.store(Rejected(listener="l", peer="p", sender="|", control_id="x",
                                   ack_code="AE", err_code="207", reason="full",
                                   raw=b"R" * 9000, ack=b"NAK"))
    free_up(spool)
    assert (await spool.store(row("after", 2000))).status == "stored"
    expected = [f"ok{i}" for i in range(3)] + stored + ["after"]
    assert [r.control_id for r in await spool.pending()] == expected  # nothing lost
    assert spool.pending_rows == len(expected) == await spool.depth()
    assert [k.status for k in kept] == ["stored"] * 3
    # The operator's log says what to do, once (not once per refused frame), and when
    # the spool works again.
    logged = [(r.getMessage(), getattr(r, "error", "")) for r in caplog.records]
    assert [m for m, _ in logged] == ["spool writer connection failing",
                                      "spool writer connection working again"]
    assert "free space" in logged[0][1]


async def test_the_open_error_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "not-a-spool.db"
    path.write_bytes(b"this is not an SQLite database, it is a text file" * 100)
    spool = Spool(path)
    with pytest.raises(SpoolError, match=r"open failed.*not an SQLite database"):
        await spool.start()
    await spool.stop()
