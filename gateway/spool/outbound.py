"""The outbound queue's SQL: results waiting for, or sent to, the EHR destinations.

Plain functions over a connection, like :mod:`~gateway.spool.writes` and
:mod:`~gateway.spool.queries`; :class:`~gateway.spool.store.Spool` runs them on its writer
connection (queueing and delivery state) or its side connection (console listings). The
statuses: ``queued`` (to be sent, in ``id`` order per destination), ``sent`` (the
destination answered AA/CA for this message's MSH-10) and ``failed`` (AR/CR, too many
attempts, or the result could not be rendered: kept, visible and replayable).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Literal

from gateway.spool.sealing import CLEAR, Sealer
from gateway.spool.tx import transaction

OutboundStatus = Literal["queued", "sent", "failed"]


@dataclass(frozen=True)
class OutboundItem:
    """A result to queue for one destination (rendered already, or failed to render)."""

    destination: str
    event_id: str
    causation_id: str | None
    message_type: str
    control_id: str
    patient_key: str | None
    resource: bytes
    message: bytes
    error: str | None = None  # set when rendering failed: queued as ``failed``


@dataclass(frozen=True)
class OutboundRow:
    """A row of the outbound queue (the message bytes are PHI: console operators only)."""

    id: int
    queued_at: float
    destination: str
    event_id: str
    causation_id: str | None
    message_type: str
    control_id: str
    status: str
    attempts: int
    replays: int
    ack_code: str | None
    last_error: str | None
    updated_at: float
    sent_at: float | None
    message: bytes
    ack: bytes | None

    @classmethod
    def from_row(cls, row: sqlite3.Row, sealer: Sealer = CLEAR) -> OutboundRow:
        """Built from a ``SELECT *`` row, its message and ACK opened."""
        place = _place(row["destination"], row["event_id"])
        return cls(id=int(row["id"]), queued_at=float(row["queued_at"]),
                   destination=row["destination"], event_id=row["event_id"],
                   causation_id=row["causation_id"], message_type=row["message_type"],
                   control_id=row["control_id"], status=row["status"],
                   attempts=int(row["attempts"]), replays=int(row["replays"]),
                   ack_code=row["ack_code"], last_error=row["last_error"],
                   updated_at=float(row["updated_at"]), sent_at=row["sent_at"],
                   message=sealer.open(bytes(row["message"]), place + "message"),
                   ack=sealer.open(bytes(row["ack"]), place + "ack")
                   if row["ack"] is not None else None)


def _place(destination: str, event_id: str) -> str:
    """Associated data of an outbound row's sealed values: its unique key, which a replay
    keeps (the row's id changes then)."""
    return f"outbound:{destination}:{event_id}:"


@dataclass(frozen=True)
class DestinationDepth:
    """One destination's queue at a glance (metrics, console)."""

    queued: int
    oldest_queued_at: float | None
    failed: int
    sent: int


def queue(conn: sqlite3.Connection, items: list[OutboundItem], sealer: Sealer = CLEAR) -> int:
    """Queue ``items`` in one transaction; a (destination, event) already queued is kept
    as it is. Returns the rows added."""
    now = time.time()
    added = 0
    with transaction(conn):
        for item in items:
            cur = conn.execute(
                "INSERT OR IGNORE INTO outbound (queued_at, destination, event_id,"
                " causation_id, message_type, control_id, patient_key, resource, message,"
                " status, last_error, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (now, item.destination, item.event_id, item.causation_id, item.message_type,
                 item.control_id, item.patient_key,
                 sealer.seal(item.resource, _place(item.destination, item.event_id) + "resource"),
                 sealer.seal(item.message, _place(item.destination, item.event_id) + "message"),
                 "failed" if item.error else "queued", item.error, now))
            added += cur.rowcount
    return added


def next_queued(conn: sqlite3.Connection, destination: str, limit: int = 1,
                sealer: Sealer = CLEAR) -> list[OutboundRow]:
    """The oldest queued rows of ``destination`` (its order is the queue's ``id`` order)."""
    rows = conn.execute("SELECT * FROM outbound WHERE destination = ? AND status = 'queued'"
                        " ORDER BY id LIMIT ?", (destination, limit)).fetchall()
    return [OutboundRow.from_row(r, sealer) for r in rows]


def mark_sent(conn: sqlite3.Connection, sent: list[tuple[int, int, str, bytes]],
              sealer: Sealer = CLEAR) -> None:
    """Record many credited rows in one transaction: (id, attempts, ack code, ack)."""
    now = time.time()
    with transaction(conn):
        conn.executemany(
            "UPDATE outbound SET status = 'sent', attempts = ?, ack_code = ?, ack = ?,"
            " last_error = NULL, updated_at = ?, sent_at = ? WHERE id = ?",
            [(attempts, code, _sealed_ack(conn, sealer, row_id, ack), now, now, row_id)
             for row_id, attempts, code, ack in sent])


def _sealed_ack(conn: sqlite3.Connection, sealer: Sealer, row_id: int,
                ack: bytes | None) -> bytes | None:
    if ack is None or not sealer.enabled:
        return ack
    row = conn.execute("SELECT destination, event_id FROM outbound WHERE id = ?",
                       (row_id,)).fetchone()
    return sealer.seal(ack, _place(row[0], row[1]) + "ack") if row is not None else ack


def settle(conn: sqlite3.Connection, row_id: int, status: OutboundStatus, attempts: int,
           ack_code: str | None, ack: bytes | None, error: str | None,
           sealer: Sealer = CLEAR) -> None:
    """Record an attempt's outcome: still ``queued`` (to retry), ``sent`` or ``failed``."""
    now = time.time()
    with transaction(conn):
        conn.execute(
            "UPDATE outbound SET status = ?, attempts = ?, ack_code = ?, ack = ?,"
            " last_error = ?, updated_at = ?, sent_at = CASE WHEN ? = 'sent' THEN ?"
            " ELSE sent_at END WHERE id = ?",
            (status, attempts, ack_code, _sealed_ack(conn, sealer, row_id, ack), error, now,
             status, now, row_id))


def requeue(conn: sqlite3.Connection, ids: list[int], messages: dict[int, bytes],
            sealer: Sealer = CLEAR) -> list[int]:
    """Queue failed (or sent) rows again, at the back of their destination's queue.

    A requeued row gets a new ``id`` (so it goes after what is queued now, keeping the
    destination's order the order of queueing) and ``replays + 1``; its MSH-10 stays the
    same, as it is the same result. ``messages`` holds re-rendered message bytes for rows
    whose rendering is to be replaced (after a profile fix). Returns the new ids.
    """
    now = time.time()
    new_ids = []
    with transaction(conn):
        for row_id in ids:
            row = conn.execute("SELECT * FROM outbound WHERE id = ? AND status != 'queued'",
                               (row_id,)).fetchone()
            if row is None:
                continue
            conn.execute("DELETE FROM outbound WHERE id = ?", (row_id,))
            cur = conn.execute(
                "INSERT INTO outbound (queued_at, destination, event_id, causation_id,"
                " message_type, control_id, patient_key, resource, message, status,"
                " attempts, replays, updated_at) VALUES (?,?,?,?,?,?,?,?,?,'queued',0,?,?)",
                (row["queued_at"], row["destination"], row["event_id"], row["causation_id"],
                 row["message_type"], row["control_id"], row["patient_key"], row["resource"],
                 sealer.seal(messages[row_id], _place(row["destination"], row["event_id"])
                             + "message") if row_id in messages else row["message"],
                 int(row["replays"]) + 1, now))
            new_ids.append(int(cur.lastrowid or 0))
    return new_ids


def resource_of(conn: sqlite3.Connection, row_id: int, sealer: Sealer = CLEAR) -> bytes | None:
    """The FHIR result a row was rendered from."""
    row = conn.execute("SELECT destination, event_id, resource FROM outbound WHERE id = ?",
                       (row_id,)).fetchone()
    if row is None:
        return None
    return sealer.open(bytes(row[2]), _place(row[0], row[1]) + "resource")


def depths(conn: sqlite3.Connection) -> dict[str, DestinationDepth]:
    """Per destination: queued (and the oldest's time), failed and sent counts."""
    out: dict[str, DestinationDepth] = {}
    for row in conn.execute(
            "SELECT destination, sum(status = 'queued'),"
            " min(CASE WHEN status = 'queued' THEN queued_at END),"
            " sum(status = 'failed'), sum(status = 'sent') FROM outbound GROUP BY destination"):
        out[row[0]] = DestinationDepth(queued=int(row[1] or 0), oldest_queued_at=row[2],
                                       failed=int(row[3] or 0), sent=int(row[4] or 0))
    return out


def find(conn: sqlite3.Connection, *, destination: str | None, status: str | None,
         limit: int, before_id: int | None, sealer: Sealer = CLEAR) -> list[OutboundRow]:
    """Rows newest first, optionally of one destination and/or status."""
    clauses: list[str] = []
    args: list[object] = []
    if destination:
        clauses.append("destination = ?")
        args.append(destination)
    if status:
        clauses.append("status = ?")
        args.append(status)
    if before_id is not None:
        clauses.append("id < ?")
        args.append(before_id)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(f"SELECT * FROM outbound{where} ORDER BY id DESC LIMIT ?",
                        (*args, limit)).fetchall()
    return [OutboundRow.from_row(r, sealer) for r in rows]


def get(conn: sqlite3.Connection, row_id: int, sealer: Sealer = CLEAR) -> OutboundRow | None:
    """One row by id."""
    row = conn.execute("SELECT * FROM outbound WHERE id = ?", (row_id,)).fetchone()
    return OutboundRow.from_row(row, sealer) if row is not None else None


def prune(conn: sqlite3.Connection, sent_before: float) -> int:
    """Delete rows sent before ``sent_before``; the number deleted."""
    with transaction(conn):
        cur = conn.execute("DELETE FROM outbound WHERE status = 'sent' AND sent_at < ?",
                           (sent_before,))
        return cur.rowcount
