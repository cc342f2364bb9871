"""Spool schema versions: files written before versioning open and are migrated in place.

``SHIPPED_SCHEMA`` is the DDL the unversioned spool ran on every open (gateway/spool.py
until the package), copied here verbatim: spools made by it are in the field.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.errors import SpoolError
from gateway.spool import Accepted, MessageFilter, PublishedMark, Spool, schema

SHIPPED_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    listener TEXT NOT NULL,
    peer TEXT NOT NULL,
    sender TEXT NOT NULL,
    control_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    raw BLOB NOT NULL,
    ack BLOB NOT NULL,
    charset TEXT NOT NULL DEFAULT 'utf-8',
    timezone TEXT NOT NULL DEFAULT 'UTC',
    event_id TEXT NOT NULL,
    patient_key TEXT,
    summary TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'pending',
    conflict INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    published_at REAL,
    kafka_topic TEXT,
    kafka_partition INTEGER,
    kafka_offset INTEGER,
    replays INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_sender_id ON messages (sender, control_id);
CREATE INDEX IF NOT EXISTS messages_pending ON messages (id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS messages_failed ON messages (id) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS messages_conflict ON messages (id) WHERE conflict = 1;
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    listener TEXT NOT NULL,
    peer TEXT NOT NULL,
    sender TEXT NOT NULL,
    control_id TEXT NOT NULL,
    ack_code TEXT NOT NULL,
    err_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL,
    ack BLOB NOT NULL
);
"""


def row(control_id: str) -> Accepted:
    return Accepted(listener="l", peer="p", sender="A|B", control_id=control_id,
                    message_type="ADT^A01", sha256=control_id, raw=b"MSH|x", ack=b"ACK",
                    event_id=f"ev-{control_id}")


def describe(path: Path) -> tuple[int, list[tuple[str, str]], list[str]]:
    """user_version, the columns of both tables (name, type) and the index names."""
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        columns = [(t, f"{c[1]} {c[2]} {c[3]} {c[4]}") for t in ("messages", "rejected")
                   for c in conn.execute(f"PRAGMA table_info({t})")]
        indexes = sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
        return version, columns, indexes
    finally:
        conn.close()


def shipped_spool(path: Path) -> None:
    """A spool as the unversioned gateway left it: WAL, one published and one pending row."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SHIPPED_SCHEMA)
    for cid, status, replays in (("1", "published", 2), ("2", "pending", 0)):
        conn.execute("INSERT INTO messages (received_at, listener, peer, sender, control_id,"
                     " message_type, sha256, raw, ack, event_id, status, replays) VALUES"
                     " (1, 'l', 'p', 'A|B', ?, 'ADT^A01', ?, x'4d5348', x'00', ?, ?, ?)",
                     (cid, cid, f"ev-{cid}", status, replays))
    conn.execute("INSERT INTO rejected (received_at, listener, peer, sender, control_id,"
                 " ack_code, err_code, reason, raw, ack) VALUES"
                 " (1, 'l', 'p', '|', '', 'AR', '100', 'no MSH', x'00', x'00')")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()


async def test_a_new_spool_is_at_the_latest_version(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "new.db")
    await spool.start()
    await spool.stop()
    version, columns, indexes = describe(tmp_path / "new.db")
    assert version == schema.VERSION == len(schema.MIGRATIONS)
    assert ("messages", "replays INTEGER 1 0") in columns
    assert indexes == ["messages_by_control_id", "messages_by_sender_id", "messages_conflict",
                       "messages_failed", "messages_pending", "messages_received",
                       "outbound_failed", "outbound_queued", "rejected_received",
                       "search_terms_by_message"]


async def test_a_spool_of_the_shipped_schema_opens_and_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "shipped.db"
    shipped_spool(path)
    spool = Spool(path)
    await spool.start()
    try:
        (pending,) = await spool.pending()
        assert (pending.control_id, pending.event_id) == ("2", "ev-2")
        (published,) = await spool.find(MessageFilter(status="published"))
        assert published.replays == 2
        assert (await spool.counts())["rejected"] == 1
        assert (await spool.store(row("3"))).status == "stored"
        assert (await spool.store(row("2"))).status == "duplicate"  # the old row counts
        await spool.mark_published([PublishedMark(pending.id, "t", 0, 1)])
    finally:
        await spool.stop()
    new = tmp_path / "new.db"
    fresh = Spool(new)
    await fresh.start()
    await fresh.stop()
    assert describe(path) == describe(new)  # migrated: the same schema as a new spool


async def test_a_spool_from_before_replay_gets_the_column(tmp_path: Path) -> None:
    path = tmp_path / "older.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SHIPPED_SCHEMA.replace(",\n    replays INTEGER NOT NULL DEFAULT 0", ""))
    conn.execute("INSERT INTO messages (received_at, listener, peer, sender, control_id,"
                 " message_type, sha256, raw, ack, event_id) VALUES"
                 " (1, 'l', 'p', 'A|B', '1', 'ADT^A01', 's', x'00', x'00', 'ev')")
    conn.close()
    spool = Spool(path)
    await spool.start()
    try:
        (info,) = await spool.find(MessageFilter())
        assert info.replays == 0
    finally:
        await spool.stop()
    assert describe(path)[0] == schema.VERSION


async def test_reopening_a_current_spool_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    for _ in range(2):
        spool = Spool(path)
        await spool.start()
        await spool.store(row("1"))
        await spool.stop()
    assert describe(path)[0] == schema.VERSION
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    conn.close()


async def test_a_spool_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    conn.close()
    spool = Spool(path)
    with pytest.raises(SpoolError, match="newer than this hl7gw knows"):
        await spool.start()
    await spool.stop()


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "shipped.db"
    shipped_spool(path)
    before = describe(path)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("migration failed half-way")

    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    monkeypatch.setattr(schema, "VERSION", len(schema.MIGRATIONS))
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="half-way"):
        schema.migrate(conn, name=str(path))
    assert not conn.in_transaction
    conn.close()
    assert describe(path) == before  # neither version 1-2 nor the half-made table


async def test_a_version_2_spool_gets_the_traceparent_column(tmp_path: Path) -> None:
    """Rows spooled before tracing have none; a row stored with one gives it back."""
    path = tmp_path / "v2.db"
    shipped_spool(path)
    conn = sqlite3.connect(path, isolation_level=None)
    for step in schema.MIGRATIONS[:2]:
        step(conn)
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    assert "traceparent" not in {c.split()[0] for _, c in describe(path)[1]}
    spool = Spool(path)
    await spool.start()
    try:
        traced = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        await spool.store(replace(row("3"), traceparent=traced))
        assert [(p.control_id, p.traceparent) for p in await spool.pending()] == [
            ("2", None), ("3", traced)]
    finally:
        await spool.stop()
    assert describe(path)[0] == schema.VERSION
