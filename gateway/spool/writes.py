"""Every change the spool makes, each inside one :func:`~gateway.spool.tx.transaction`.

Plain functions over a connection, so the same SQL runs on the writer's connection
(intake, publisher, pruning) and on the side connection (replay), and a test can call
them on any connection. They return counts; the :class:`~gateway.spool.store.Spool` keeps
its tallies from those.
"""

from __future__ import annotations

import sqlite3
import time

from gateway.spool.records import Accepted, MessageFilter, PublishedMark, Rejected, StoreOutcome
from gateway.spool.tx import transaction

REPLAY_CHUNK = 500  # rows queued for replay per transaction


def store_batch(conn: sqlite3.Connection, rows: list[Accepted | Rejected]) -> list[StoreOutcome]:
    """Insert ``rows`` in one transaction (one fsync for all: the group commit)."""
    with transaction(conn):
        return [_store_one(conn, row) for row in rows]


def _store_one(conn: sqlite3.Connection, row: Accepted | Rejected) -> StoreOutcome:
    # Duplicates are decided here, in the insert's own transaction, so two copies of one
    # frame arriving together cannot both be stored.
    now = time.time()
    if isinstance(row, Rejected):
        cur = conn.execute(
            "INSERT INTO rejected (received_at, listener, peer, sender, control_id,"
            " ack_code, err_code, reason, raw, ack) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (now, row.listener, row.peer, row.sender, row.control_id, row.ack_code,
             row.err_code, row.reason, row.raw, row.ack),
        )
        return StoreOutcome("rejected", int(cur.lastrowid or 0), row.ack)
    earlier = conn.execute(
        "SELECT id, sha256, ack FROM messages WHERE sender = ? AND control_id = ? ORDER BY id",
        (row.sender, row.control_id),
    ).fetchall()
    for found in earlier:
        if found["sha256"] == row.sha256:
            return StoreOutcome("duplicate", int(found["id"]), bytes(found["ack"]))
    cur = conn.execute(
        "INSERT INTO messages (received_at, listener, peer, sender, control_id,"
        " message_type, sha256, raw, ack, charset, timezone, event_id, conflict,"
        " traceparent) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (now, row.listener, row.peer, row.sender, row.control_id, row.message_type,
         row.sha256, row.raw, row.ack, row.charset, row.timezone, row.event_id,
         1 if earlier else 0, row.traceparent),
    )
    return StoreOutcome("conflict" if earlier else "stored", int(cur.lastrowid or 0), row.ack)


def mark_published(conn: sqlite3.Connection, marks: list[PublishedMark]) -> int:
    """Mark pending rows published with where they went; the number of rows changed."""
    now = time.time()
    with transaction(conn):
        cur = conn.executemany(
            "UPDATE messages SET status = 'published', published_at = ?, kafka_topic = ?,"
            " kafka_partition = ?, kafka_offset = ?, patient_key = ?, summary = ?,"
            " attempts = attempts + 1 WHERE id = ? AND status = 'pending'",
            [(now, m.topic, m.partition, m.offset, m.patient_key, m.summary, m.row_id)
             for m in marks],
        )
        return int(cur.rowcount)


def mark_failed(conn: sqlite3.Connection, row_id: int, reason: str, summary: str) -> int:
    """Mark a pending row that cannot be mapped as failed; 1 if it was pending, else 0."""
    with transaction(conn):
        return int(conn.execute(
            "UPDATE messages SET status = 'failed', last_error = ?, summary = ?,"
            " attempts = attempts + 1 WHERE id = ? AND status = 'pending'",
            (reason[:500], summary, row_id)).rowcount)


def record_failure(conn: sqlite3.Connection, row_id: int, error: str) -> None:
    """Count a failed publish attempt and keep its reason."""
    with transaction(conn):
        conn.execute("UPDATE messages SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                     (error[:500], row_id))


def prune(conn: sqlite3.Connection, published_before: float, rejected_before: float) -> int:
    """Delete published rows and refusals older than the given times; rows deleted."""
    with transaction(conn):
        published = conn.execute(
            "DELETE FROM messages WHERE status = 'published' AND published_at < ?",
            (published_before,)).rowcount
        refused = conn.execute("DELETE FROM rejected WHERE received_at < ?",
                               (rejected_before,)).rowcount
    return int(published + refused)


def replay(conn: sqlite3.Connection, where: MessageFilter) -> list[int]:
    """Queue settled rows matching ``where`` again, ``REPLAY_CHUNK`` per transaction.

    Short transactions, so intake's commits wait for one chunk at most. Returns the ids
    queued; rows already pending are left alone.
    """
    sql, args = where.where()
    found = [int(r["id"]) for r in conn.execute(
        f"SELECT id FROM messages WHERE ({sql}) AND status != 'pending' ORDER BY id", args)]
    queued: list[int] = []
    for start in range(0, len(found), REPLAY_CHUNK):
        chunk = found[start:start + REPLAY_CHUNK]
        with transaction(conn):
            # Status checked again: the publisher may have settled a row meanwhile.
            queued.extend(i for i in chunk if conn.execute(
                "UPDATE messages SET status = 'pending', replays = replays + 1,"
                " last_error = NULL WHERE id = ? AND status != 'pending'", (i,)).rowcount)
    return queued
