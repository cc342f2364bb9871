"""The spool's tables and their history: ordered migrations keyed by ``PRAGMA user_version``.

A spool file records the number of migrations applied to it in ``user_version``. Opening
a spool applies the missing ones in order, all in one ``BEGIN IMMEDIATE`` transaction
together with the new version, so a crash mid-migration leaves the old schema intact and
two processes opening the same file (``hl7gw serve`` and ``hl7gw replay``) migrate once.

Spools written before versioning have ``user_version`` 0 and come in two shapes: with the
``replays`` column in ``CREATE TABLE`` (made by a gateway that had replay) or without it
(it was then added by an ad-hoc ``ALTER TABLE`` on open). The first two migrations are
written to bring both shapes, and an empty file, to the same schema; later ones need no
such care: add a function at the end of :data:`MIGRATIONS`, never edit or reorder one.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable

from gateway.errors import SpoolError
from gateway.spool.tx import transaction

# Version 1: the tables as first shipped. ``IF NOT EXISTS`` because unversioned spools
# (user_version 0) already have them.
_TABLES = """
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
    kafka_offset INTEGER
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


def _create_tables(conn: sqlite3.Connection) -> None:
    """1: messages (accepted, with publish state) and rejected (refused, with the NAK)."""
    # Statement by statement: executescript() would COMMIT the migration's transaction.
    for statement in _TABLES.split(";"):
        if statement.strip():
            conn.execute(statement)


def _add_replays(conn: sqlite3.Connection) -> None:
    """2: ``messages.replays``, how often a row was queued again (its event id's ``-r<n>``)."""
    if "replays" not in _columns(conn, "messages"):  # unversioned spools may have it
        conn.execute("ALTER TABLE messages ADD COLUMN replays INTEGER NOT NULL DEFAULT 0")


def _add_traceparent(conn: sqlite3.Connection) -> None:
    """3: ``messages.traceparent``, the W3C trace context of the frame that brought the row
    (NULL while tracing is off), so its publishing joins that trace (gateway/traces.py)."""
    conn.execute("ALTER TABLE messages ADD COLUMN traceparent TEXT")


def _add_outbound(conn: sqlite3.Connection) -> None:
    """4: ``outbound``, results queued for the EHR destinations (gateway/outbound/).

    One row per (destination, result event): the unique key makes queueing idempotent, so
    a result consumed twice (a crash before the offset commit) is queued once. ``message``
    is the HL7 v2 message as sent (its MSH-10 fixed at queueing, the same on every
    resend); ``resource`` the FHIR result it was rendered from, for a replay after a
    profile fix.
    """
    conn.execute("""
        CREATE TABLE outbound (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- a replayed row's new id is never reused
            queued_at REAL NOT NULL,
            destination TEXT NOT NULL,
            event_id TEXT NOT NULL,
            causation_id TEXT,
            message_type TEXT NOT NULL,
            control_id TEXT NOT NULL,
            patient_key TEXT,
            resource BLOB NOT NULL,
            message BLOB NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued',
            attempts INTEGER NOT NULL DEFAULT 0,
            replays INTEGER NOT NULL DEFAULT 0,
            ack_code TEXT,
            ack BLOB,
            last_error TEXT,
            updated_at REAL NOT NULL,
            sent_at REAL,
            UNIQUE (destination, event_id)
        )""")
    conn.execute("CREATE INDEX outbound_queued ON outbound (destination, id)"
                 " WHERE status = 'queued'")
    conn.execute("CREATE INDEX outbound_failed ON outbound (id) WHERE status = 'failed'")


def _add_journal_state(conn: sqlite3.Connection) -> None:
    """5: ``journal_state``, the intake journal's bookmark (gateway/spool/journal.py).

    ``indexed_seq`` is the last journal record inserted here, updated in the same
    transaction as the rows, so after a crash the records past it are exactly the ones to
    replay. ``spool_id`` ties a journal to this file: a journal left next to a new, empty
    spool is refused rather than replayed into it.
    """
    conn.execute("CREATE TABLE journal_state (id INTEGER PRIMARY KEY CHECK (id = 1),"
                 " spool_id INTEGER NOT NULL, indexed_seq INTEGER NOT NULL)")
    conn.execute("INSERT INTO journal_state VALUES (1, ?, 0)",
                 (secrets.randbits(63),))


def _add_search(conn: sqlite3.Connection) -> None:
    """6: the search index (gateway/spool/search.py) and time indexes for listings.

    ``search_terms`` holds keyed hashes of kind-prefixed tokens (never a value in clear),
    one row per (term, message); ``search_state`` the indexer's bookmark and its key
    (sealed with the keyring when encryption is on). ``received_at`` indexes serve the
    time windows of searches and of the Interfaces page; ``control_id`` a control id
    search without a sender.
    """
    conn.execute("CREATE TABLE search_terms (term BLOB NOT NULL, message_id INTEGER NOT NULL,"
                 " PRIMARY KEY (term, message_id)) WITHOUT ROWID")
    conn.execute("CREATE INDEX search_terms_by_message ON search_terms (message_id)")
    conn.execute("CREATE TABLE search_state (id INTEGER PRIMARY KEY CHECK (id = 1),"
                 " indexed_upto INTEGER NOT NULL, key BLOB NOT NULL)")
    conn.execute("INSERT INTO search_state VALUES (1, 0, ?)", (secrets.token_bytes(32),))
    conn.execute("CREATE INDEX messages_received ON messages (received_at)")
    conn.execute("CREATE INDEX messages_by_control_id ON messages (control_id)")
    conn.execute("CREATE INDEX rejected_received ON rejected (received_at)")


def _add_first_publication(conn: sqlite3.Connection) -> None:
    """7: where a message was first published (a replay moves ``kafka_*`` to the new
    record; the console's diff compares with the first Bundle the consumers saw)."""
    for column in ("first_topic TEXT", "first_partition INTEGER", "first_offset INTEGER"):
        conn.execute(f"ALTER TABLE messages ADD COLUMN {column}")
    conn.execute("UPDATE messages SET first_topic = kafka_topic,"
                 " first_partition = kafka_partition, first_offset = kafka_offset"
                 " WHERE kafka_offset IS NOT NULL AND replays = 0")


Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: tuple[Migration, ...] = (_create_tables, _add_replays, _add_traceparent,
                                     _add_outbound, _add_journal_state, _add_search,
                                     _add_first_publication)
VERSION = len(MIGRATIONS)


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}


def user_version(conn: sqlite3.Connection) -> int:
    """The number of migrations applied to the open spool."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, *, name: str) -> int:
    """Apply the migrations ``conn``'s file lacks, in one transaction; the version before.

    Raises SpoolError for a spool written by a newer gateway (its schema is unknown here).
    """
    if user_version(conn) == VERSION:  # the usual case: no write lock needed
        return VERSION
    with transaction(conn):
        found = user_version(conn)  # again, under the lock: another process may have won
        if found > VERSION:
            raise SpoolError(
                f"spool {name} has schema version {found}, newer than this hl7gw knows "
                f"({VERSION}); run the newer hl7gw, or give this one another spool.path")
        for step in MIGRATIONS[found:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {VERSION}")
    return found
