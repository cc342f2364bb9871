"""Every change the spool makes, each inside one :func:`~gateway.spool.tx.transaction`.

Plain functions over a connection, so the same SQL runs on the writer's connection
(intake, publisher, pruning) and on the side connection (replay), and a test can call
them on any connection. They return counts; the :class:`~gateway.spool.store.Spool` keeps
its tallies from those.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping

from gateway.spool.journal_records import Entry
from gateway.spool.records import Accepted, MessageFilter, PublishedMark, Rejected, StoreOutcome
from gateway.spool.sealing import CLEAR, Sealer
from gateway.spool.tx import transaction

REPLAY_CHUNK = 500  # rows queued for replay per transaction


class NextIds:
    """The ids the next rows get, per table: assigned before the insert, because with the
    journal a row's id is fixed (and ACKed, and journaled) before SQLite sees the row."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.messages = _max_id(conn, "messages") + 1
        self.rejected = _max_id(conn, "rejected") + 1

    def take(self, table: str) -> int:
        """The next id of ``table``."""
        if table == "rejected":
            self.rejected += 1
            return self.rejected - 1
        self.messages += 1
        return self.messages - 1


def _max_id(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])


def store_batch(conn: sqlite3.Connection, rows: list[Accepted | Rejected],
                sealer: Sealer = CLEAR) -> list[StoreOutcome]:
    """Insert ``rows`` in one transaction (one fsync for all: the group commit).

    The spool without a journal (``spool.journal: false``) commits intake this way."""
    with transaction(conn):
        planned = plan_batch(conn, rows, NextIds(conn), sealer)
        insert_entries(conn, [entry for _, entry in planned if entry is not None], sealer)
    return [outcome for outcome, _ in planned]


# (sender, control id) -> (sha256, row id, ACK in clear) of rows journaled but not yet in
# SQLite: what the duplicate check must see besides SQLite (gateway/spool/journaled.py).
Unindexed = Mapping[tuple[str, str], list[tuple[str, int, bytes]]]


def plan_batch(conn: sqlite3.Connection, rows: list[Accepted | Rejected], ids: NextIds,
               sealer: Sealer = CLEAR, unindexed: Unindexed | None = None,
               ) -> list[tuple[StoreOutcome, Entry | None]]:
    """What storing ``rows`` does: each one's outcome, and the entry to insert (None for a
    duplicate). Duplicates are decided against the spool, the rows journaled but not yet
    in it (``unindexed``) and the batch itself, on the writer's connection, so two copies
    of one frame arriving together cannot both be kept.
    """
    now = time.time()
    # (sha256, row id, ACK, whether the ACK is as SQLite holds it: sealed when encrypted)
    seen: dict[tuple[str, str], list[tuple[str, int, bytes, bool]]] = {}
    planned: list[tuple[StoreOutcome, Entry | None]] = []
    for row in rows:
        if isinstance(row, Rejected):
            entry = Entry(row, ids.take("rejected"), now)
            planned.append((StoreOutcome("rejected", entry.id, row.ack), entry))
            continue
        key = (row.sender, row.control_id)
        if key not in seen:
            seen[key] = [(str(r["sha256"]), int(r["id"]), r["ack"], True)
                         for r in conn.execute(
                "SELECT id, sha256, ack FROM messages WHERE sender = ? AND control_id = ?"
                " ORDER BY id", key)]
            if unindexed is not None and key in unindexed:
                seen[key] += [(sha, i, ack, False) for sha, i, ack in unindexed[key]]
        earlier = seen[key]
        same = next((e for e in earlier if e[0] == row.sha256), None)
        if same is not None:
            ack = sealer.open(bytes(same[2]), f"messages:{same[1]}:ack") if same[3] \
                else same[2]
            planned.append((StoreOutcome("duplicate", same[1], ack), None))
            continue
        entry = Entry(row, ids.take("messages"), now, conflict=bool(earlier))
        earlier.append((row.sha256, entry.id, row.ack, False))
        planned.append((StoreOutcome("conflict" if earlier[:-1] else "stored", entry.id,
                                     row.ack), entry))
    return planned


def insert_entries(conn: sqlite3.Connection, entries: list[Entry],
                   sealer: Sealer = CLEAR) -> None:
    """Insert planned entries with their ids (inside the caller's transaction), bodies
    and ACKs sealed when the spool is encrypted."""
    def seal(value: bytes, entry: Entry, column: str) -> bytes:
        return sealer.seal(value, f"{entry.table}:{entry.id}:{column}")

    messages = [e for e in entries if isinstance(e.row, Accepted)]
    if messages:
        conn.executemany(
            "INSERT INTO messages (id, received_at, listener, peer, sender, control_id,"
            " message_type, sha256, raw, ack, charset, timezone, event_id, conflict,"
            " traceparent) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(e.id, e.received_at, r.listener, r.peer, r.sender, r.control_id,
              r.message_type, r.sha256, seal(r.raw, e, "raw"), seal(r.ack, e, "ack"),
              r.charset, r.timezone, r.event_id,
              1 if e.conflict else 0, r.traceparent)
             for e in messages if isinstance(r := e.row, Accepted)])
    refused = [e for e in entries if isinstance(e.row, Rejected)]
    if refused:
        conn.executemany(
            "INSERT INTO rejected (id, received_at, listener, peer, sender, control_id,"
            " ack_code, err_code, reason, raw, ack) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(e.id, e.received_at, r.listener, r.peer, r.sender, r.control_id, r.ack_code,
              r.err_code, r.reason, seal(r.raw, e, "raw"), seal(r.ack, e, "ack"))
             for e in refused if isinstance(r := e.row, Rejected)])


def index_entries(conn: sqlite3.Connection, entries: list[Entry], seq: int, *,
                  durable: bool, sealer: Sealer = CLEAR) -> None:
    """Insert journaled entries and record ``seq`` as indexed, atomically: after a crash,
    the journal's records past ``journal_state.indexed_seq`` are exactly those SQLite
    lacks. ``durable=False`` skips the commit's fsync (the journal already holds them);
    a durable commit makes every earlier one durable too (the WAL is synced in order)."""
    if not durable:
        conn.execute("PRAGMA synchronous=NORMAL")
    try:
        with transaction(conn):
            insert_entries(conn, entries, sealer)
            conn.execute("UPDATE journal_state SET indexed_seq = ? WHERE id = 1", (seq,))
    finally:
        if not durable:
            conn.execute("PRAGMA synchronous=FULL")


def make_durable(conn: sqlite3.Connection) -> None:
    """A commit with fsync: every earlier commit (the journal's unsynced index inserts
    among them) is then on stable storage too, as the WAL is synced in order."""
    with transaction(conn):
        conn.execute("UPDATE journal_state SET indexed_seq = indexed_seq WHERE id = 1")


def mark_published(conn: sqlite3.Connection, marks: list[PublishedMark]) -> int:
    """Mark pending rows published with where they went; the number of rows changed.

    The first publication's place is kept apart (``first_*``, numbered parameters 2-4:
    the topic, partition and offset again); a replay moves only ``kafka_*``."""
    now = time.time()
    with transaction(conn):
        cur = conn.executemany(
            "UPDATE messages SET status = 'published', published_at = ?, kafka_topic = ?,"
            " kafka_partition = ?, kafka_offset = ?, patient_key = ?, summary = ?,"
            " attempts = attempts + 1, first_topic = coalesce(first_topic, ?2),"
            " first_partition = coalesce(first_partition, ?3),"
            " first_offset = coalesce(first_offset, ?4) WHERE id = ? AND status = 'pending'",
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
        # their search terms go with them (gateway/spool/search.py)
        conn.execute("DELETE FROM search_terms WHERE message_id IN (SELECT id FROM messages"
                     " WHERE status = 'published' AND published_at < ?)", (published_before,))
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
