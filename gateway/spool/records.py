"""What goes into the spool and what comes back out: named records, never bare tuples.

Rows read from SQLite are turned into these by column name (``sqlite3.Row``), so adding a
column or reordering a ``SELECT`` cannot shift a value into the wrong field.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import ClassVar, Literal


@dataclass(frozen=True)
class Accepted:
    """A message that passed intake checks, with its ACK; mapped later by the publisher."""

    listener: str
    peer: str
    sender: str
    control_id: str
    message_type: str
    sha256: str
    raw: bytes
    ack: bytes
    event_id: str
    charset: str = "utf-8"
    timezone: str = "UTC"
    traceparent: str | None = None  # the frame's span, while tracing (gateway/traces.py)


@dataclass(frozen=True)
class Rejected:
    """A message refused with AE/AR; its raw bytes are kept for inspection."""

    listener: str
    peer: str
    sender: str
    control_id: str
    ack_code: str
    err_code: str
    reason: str
    raw: bytes
    ack: bytes


@dataclass(frozen=True)
class StoreOutcome:
    """What the spool did with a row: stored, a duplicate of an earlier one, or a conflict."""

    status: Literal["stored", "duplicate", "conflict", "rejected"]
    row_id: int
    ack: bytes


@dataclass(frozen=True)
class PendingRow:
    """An unpublished message, as the publisher needs it: raw bytes and how to read them."""

    id: int
    received_at: float
    sender: str
    control_id: str
    message_type: str
    event_id: str
    raw: bytes
    charset: str
    timezone: str
    traceparent: str | None = None  # the intake's frame span, to continue its trace

    @classmethod
    def from_row(cls, row: sqlite3.Row, raw: bytes | None = None) -> PendingRow:
        """A ``messages`` row (``raw`` given when it was sealed and is opened already); a
        replayed one's event id gets ``-r<replays>``."""
        replays = int(row["replays"])
        return cls(id=row["id"], received_at=row["received_at"], sender=row["sender"],
                   control_id=row["control_id"], message_type=row["message_type"],
                   event_id=f"{row['event_id']}-r{replays}" if replays else row["event_id"],
                   raw=bytes(row["raw"]) if raw is None else raw, charset=row["charset"],
                   timezone=row["timezone"],
                   traceparent=row["traceparent"])


@dataclass(frozen=True)
class PublishedMark:
    """Where a row went in Kafka, and the mapping summary to keep with it."""

    row_id: int
    topic: str
    partition: int
    offset: int
    patient_key: str | None = None
    summary: str = "{}"


@dataclass(frozen=True)
class StoredBody:
    """A stored message's bytes as received and the answer (ACK or NAK) that was sent."""

    raw: bytes
    ack: bytes

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredBody:
        """A row holding ``raw`` and ``ack`` columns."""
        return cls(raw=bytes(row["raw"]), ack=bytes(row["ack"]))


@dataclass(frozen=True)
class MessageFilter:
    """Which rows the console, the admin API and ``hl7gw replay`` mean.

    ``message_type`` may end in ``*`` (``ADT^*``); ``status`` is pending, published,
    failed or conflict (a flag on any status); times are Unix seconds (received).
    """

    ids: tuple[int, ...] = ()
    sender: str | None = None  # "APP|FAC", or "APP" for every facility of that application
    message_type: str | None = None
    status: str | None = None
    control_id: str | None = None
    since: float | None = None
    until: float | None = None

    def where(self) -> tuple[str, list[object]]:
        """The SQL ``WHERE`` text (``1`` when empty) and its parameters."""
        parts: list[str] = []
        args: list[object] = []
        if self.ids:
            parts.append(f"id IN ({','.join('?' * len(self.ids))})")
            args.extend(self.ids)
        if self.sender:
            if "|" in self.sender:
                parts.append("sender = ?")
                args.append(self.sender)
            else:
                parts.append("substr(sender, 1, instr(sender, '|') - 1) = ?")
                args.append(self.sender)
        if self.message_type:
            if self.message_type.endswith("*"):
                parts.append("substr(message_type, 1, ?) = ?")
                prefix = self.message_type[:-1]
                args.extend((len(prefix), prefix))
            else:
                parts.append("message_type = ?")
                args.append(self.message_type)
        if self.status == "conflict":
            parts.append("conflict = 1")
        elif self.status:
            parts.append("status = ?")
            args.append(self.status)
        if self.control_id:
            parts.append("control_id = ?")
            args.append(self.control_id)
        if self.since is not None:
            parts.append("received_at >= ?")
            args.append(self.since)
        if self.until is not None:
            parts.append("received_at < ?")
            args.append(self.until)
        return (" AND ".join(parts) or "1"), args


@dataclass(frozen=True)
class MessageInfo:
    """A spooled message without its body: what a viewer may see."""

    id: int
    received_at: float
    listener: str
    peer: str
    sender: str
    control_id: str
    message_type: str
    status: str
    conflict: bool
    attempts: int
    last_error: str | None
    published_at: float | None
    kafka_topic: str | None
    kafka_partition: int | None
    kafka_offset: int | None
    summary: str  # JSON: issues and unmapped fields, no values
    replays: int
    size: int
    charset: str
    timezone: str
    first_topic: str | None = None  # where it was first published (a replay moves kafka_*)
    first_partition: int | None = None
    first_offset: int | None = None

    # The SELECT list that from_row reads: every field by name, the body only as its size.
    COLUMNS: ClassVar[str] = (
        "id, received_at, listener, peer, sender, control_id, message_type, status,"
        " conflict, attempts, last_error, published_at, kafka_topic, kafka_partition,"
        " kafka_offset, summary, replays, length(raw) AS size, charset, timezone,"
        " first_topic, first_partition, first_offset")

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> MessageInfo:
        """A row selected with :attr:`COLUMNS`."""
        values = {key: row[key] for key in row.keys()}
        values["conflict"] = bool(values["conflict"])
        return cls(**values)


@dataclass(frozen=True)
class RejectedInfo:
    """A refused message without its body."""

    id: int
    received_at: float
    listener: str
    peer: str
    sender: str
    control_id: str
    ack_code: str
    err_code: str
    reason: str
    size: int

    COLUMNS: ClassVar[str] = (
        "id, received_at, listener, peer, sender, control_id, ack_code, err_code,"
        " reason, length(raw) AS size")

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RejectedInfo:
        """A row selected with :attr:`COLUMNS`."""
        return cls(**{key: row[key] for key in row.keys()})
