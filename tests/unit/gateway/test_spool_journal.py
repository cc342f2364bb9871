"""The spool with its intake journal: what a crash between the journal's commit and
SQLite's insert leaves, and what a failing SQLite does to intake (real files)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import pytest

from gateway.errors import SpoolError
from gateway.spool import Accepted, Rejected, Spool, writes
from gateway.spool import store as store_module
from gateway.spool.journaled import INDEX_ROWS


def accepted(cid: str, body: bytes = b"MSH|^~\\&|A|B\r") -> Accepted:
    return Accepted(listener="l", peer="p", sender="A|B", control_id=cid,
                    message_type="ADT^A01", sha256=f"sha-{cid}-{len(body)}", raw=body,
                    ack=f"ACK {cid}".encode(), event_id=f"ev-{cid}",
                    charset="latin-1", traceparent=None if cid.endswith("0") else "00-t")


def journaled(tmp_path: Path, segment: int = 1 << 20) -> Spool:
    return Spool(tmp_path / "spool.db", journal_dir=tmp_path / "journal",
                 segment_bytes=segment)


def crash(spool: Spool) -> None:
    """What SIGKILL leaves: files as they are, nothing flushed or indexed on the way out."""
    assert spool.journal is not None and spool._conn is not None
    spool.journal.close()
    spool._conn.close()
    spool._conn = None
    if spool._writer is not None:
        spool._writer.cancel()
        spool._writer = None


def rows(path: Path) -> list[tuple[int, str, bytes, int, str | None]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, control_id, raw, conflict, traceparent FROM messages"
                            " ORDER BY id").fetchall()
    finally:
        conn.close()


async def test_rows_acked_but_not_indexed_when_the_process_died_are_indexed_at_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = journaled(tmp_path)
    await spool.start()
    first = await spool.store(accepted("M0"))
    await spool.flush()
    # From here on SQLite's insert never happens: the process "dies" right after the ACKs.
    monkeypatch.setattr(writes, "index_entries", _refuse)
    *later, refused = await asyncio.gather(  # arriving together: one journal commit
        *[spool.store(accepted(f"M{i}", b"MSH|\xe9t\xe9\r")) for i in range(1, 4)],
        spool.store(Rejected(listener="l", peer="p", sender="A|B", control_id="X",
                             ack_code="AR", err_code="100", reason="no MSH",
                             raw=b"\xff junk", ack=b"NAK")))
    assert [o.status for o in later] == ["stored", "stored", "stored"]
    crash(spool)
    assert [r[1] for r in rows(tmp_path / "spool.db")] == ["M0"]
    monkeypatch.undo()

    again = journaled(tmp_path)
    await again.start()
    try:
        assert again.replayed == 4
        # The same ids the ACKs were given, the bytes and flags as they were.
        assert rows(tmp_path / "spool.db") == [
            (first.row_id, "M0", b"MSH|^~\\&|A|B\r", 0, None),
            *[(o.row_id, f"M{i}", b"MSH|\xe9t\xe9\r", 0, "00-t")
              for i, o in zip(range(1, 4), later, strict=True)]]
        body = await again.rejected_body(refused.row_id)
        assert body is not None and body.raw == b"\xff junk"
        assert await again.depth() == 4
        # A resend of a message whose ACK was lost is recognised after the restart.
        dup = await again.store(accepted("M2", b"MSH|\xe9t\xe9\r"))
        assert (dup.status, dup.row_id) == ("duplicate", later[1].row_id)
        fresh = await again.store(accepted("M9"))
        assert fresh.row_id == later[-1].row_id + 1
    finally:
        await again.stop()
    third = journaled(tmp_path)
    await third.start()
    assert third.replayed == 0  # indexed once, never again
    await third.stop()


def _refuse(*_: object, **__: object) -> None:
    raise sqlite3.OperationalError("database or disk is full")


async def test_a_failing_sqlite_refuses_the_next_batch_and_recovers_without_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = journaled(tmp_path)
    await spool.start()
    try:
        monkeypatch.setattr(writes, "index_entries", _refuse)
        # Journaled (durable) before SQLite failed: this one is ACKed.
        assert (await spool.store(accepted("F1"))).status == "stored"
        with pytest.raises(SpoolError, match="full"):
            await spool.flush()  # SQLite refuses the rows
        # Until SQLite takes them, nothing more is journaled: refused, and not journaled.
        with pytest.raises(SpoolError, match="full"):
            await spool.store(accepted("F2"))
        monkeypatch.undo()
        assert (await spool.store(accepted("F3"))).status == "stored"
        await spool.flush()
        assert [r[1] for r in rows(tmp_path / "spool.db")] == ["F1", "F3"]
    finally:
        await spool.stop()
    assert spool.replayed == 0


async def test_segments_rotate_and_are_recycled_while_rows_keep_their_order(
        tmp_path: Path) -> None:
    spool = journaled(tmp_path, segment=16 << 10)
    indexed: list[int] = []
    await spool.start()
    spool.on_indexed(lambda: indexed.append(1))
    try:
        for i in range(400):
            assert (await spool.store(accepted(f"R{i:03d}", b"x" * 200))).status == "stored"
        assert spool.journal is not None and spool.journal.fsyncs == 400
        files = sorted(p.name for p in (tmp_path / "journal").iterdir())
        # The live segment and at most one spare or retired one: old segments are reused.
        assert len([f for f in files if f.startswith("seg-")]) == 1, files
        assert len(files) <= 3, files
        assert indexed  # readers were told
        pending = await spool.pending(limit=1000)
        assert [p.control_id for p in pending] == [f"R{i:03d}" for i in range(400)]
    finally:
        await spool.stop()
    again = journaled(tmp_path, segment=16 << 10)
    await again.start()
    assert again.replayed == 0 and again.journal is not None and again.journal.cuts == []
    await again.stop()


async def test_a_resend_is_a_duplicate_while_its_first_copy_waits_to_be_indexed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = journaled(tmp_path)
    await spool.start()
    calls: list[int] = []
    index_entries = writes.index_entries

    def counted(conn: sqlite3.Connection, entries: list[object], *args: object,
                **kwargs: object) -> None:
        calls.append(len(entries))
        index_entries(conn, entries, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writes, "index_entries", counted)
    indexed = asyncio.Event()
    spool.on_indexed(indexed.set)
    try:
        first = await spool.store(accepted("D1"))
        other = await spool.store(accepted("D2"))
        # Not in SQLite yet (inserted in one go, shortly after), yet recognised at once.
        assert calls == [] and [r[1] for r in rows(tmp_path / "spool.db")] == []
        again = await spool.store(accepted("D1"))
        assert (again.status, again.row_id, again.ack) == ("duplicate", first.row_id,
                                                             b"ACK D1")
        changed = await spool.store(accepted("D2", b"MSH|other\r"))
        assert (changed.status, changed.row_id) == ("conflict", other.row_id + 1)
        # Without any reader, the rows reach SQLite within the index delay, in one insert.
        await asyncio.wait_for(indexed.wait(), timeout=10)
        assert calls == [3]
        assert [r[1] for r in rows(tmp_path / "spool.db")] == ["D1", "D2", "D2"]
    finally:
        await spool.stop()


async def test_index_rows_waiting_are_inserted_at_once_not_after_the_delay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The timer is out of reach: only the row count can trigger the insert.
    monkeypatch.setattr(store_module, "INDEX_DELAY_S", 60.0)
    spool = journaled(tmp_path)
    await spool.start()
    indexed = asyncio.Event()
    spool.on_indexed(indexed.set)
    try:
        for i in range(INDEX_ROWS - 1):
            await spool.store(accepted(f"R{i}"))
        await asyncio.sleep(0.1)
        assert not indexed.is_set() and rows(tmp_path / "spool.db") == []
        await spool.store(accepted("LAST"))  # INDEX_ROWS wait: inserted in a task, now
        await asyncio.wait_for(indexed.wait(), timeout=10)
        assert len(rows(tmp_path / "spool.db")) == INDEX_ROWS
    finally:
        await spool.stop()


async def test_a_lone_sender_commits_alone_and_many_senders_still_share_commits(
        tmp_path: Path) -> None:
    spool = journaled(tmp_path)
    await spool.start()
    try:
        assert spool.journal is not None
        for i in range(30):  # one connection, each row waiting for the last: a sync each
            assert (await spool.store(accepted(f"L{i}"))).status == "stored"
        assert spool.journal.fsyncs == 30 and spool.commits == 30

        def from_peer(cid: str, peer: str) -> Accepted:
            return dataclasses.replace(accepted(cid), peer=peer)

        before = spool.journal.fsyncs
        outcomes = await asyncio.gather(*[
            spool.store(from_peer(f"P{i}", f"10.0.0.{i % 8}:1")) for i in range(64)])
        assert {o.status for o in outcomes} == {"stored"}
        # Eight connections arriving together share commits, as before the lone path.
        assert spool.journal.fsyncs - before < 16
        pending = await spool.pending(limit=200)
        assert [p.control_id for p in pending] == [
            *[f"L{i}" for i in range(30)], *[f"P{i}" for i in range(64)]]
    finally:
        await spool.stop()
