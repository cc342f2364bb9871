"""WAL checkpoints run on the Checkpointer's thread, never inside intake's commits."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gateway.spool import Accepted, Spool
from gateway.spool.checkpoint import Checkpointer


def wal_only_writes(path: Path) -> sqlite3.Connection:
    """1 MB written with automatic checkpoints off: it all sits in the WAL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (b BLOB)")
    for _ in range(256):
        conn.execute("INSERT INTO t VALUES (?)", (b"x" * 4096,))
    return conn


def test_the_checkpointer_copies_the_wal_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    writer = wal_only_writes(path)  # kept open: closing it would checkpoint by itself
    try:
        time.sleep(0.3)
        assert path.stat().st_size < 64 * 1024  # nothing copied without a checkpoint
        checkpointer = Checkpointer(path, interval_s=0.05)
        checkpointer.start()
        try:
            deadline = time.monotonic() + 20
            while path.stat().st_size < 1024 * 1024 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            checkpointer.stop()
        assert path.stat().st_size >= 1024 * 1024
        assert checkpointer.checkpoints >= 1
        assert not checkpointer._thread.is_alive()
    finally:
        writer.close()


async def test_the_spools_writer_never_checkpoints(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", journal_dir=tmp_path / "journal")
    await spool.start()
    try:
        await spool.store(Accepted(listener="l", peer="p", sender="A|B", control_id="C1",
                                   message_type="ADT^A01", sha256="s", raw=b"MSH|raw",
                                   ack=b"a", event_id="ev-1"))
        conn = spool._conn
        assert conn is not None
        autocheckpoint = await spool._run(
            "read", lambda: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        assert autocheckpoint == 0
    finally:
        await spool.stop()
    assert spool._checkpointer is None  # stopped with the spool
