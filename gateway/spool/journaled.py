"""The spool's journal side: what the group-commit writer does when a journal is in front
of SQLite (gateway/spool/journal.py for the files, docs/journal.md for the design).

- :meth:`JournaledWrites.open`: recovery, before intake opens. The journal's records past
  ``journal_state.indexed_seq`` are inserted (one durable commit), and if encryption was
  just turned on, segments holding clear records are retired at once.
- :meth:`JournaledWrites.store_batch`: the commit intake's ACK waits for. Duplicates are
  decided against SQLite (which holds every earlier batch: see :meth:`index`), ids are
  given, the records are appended with one ``fdatasync``.
- :meth:`JournaledWrites.index`: right after the ACKs, the same rows into SQLite with no
  fsync of its own, with the journal position they reach. Once a segment has filled, the
  insert is made durable (which makes every earlier one durable too) and the full
  segments are recycled.

Every method runs on the spool's writer connection and thread (or inline on the loop).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from gateway.spool import journal_records, writes
from gateway.spool.journal import Journal
from gateway.spool.journal_records import Entry
from gateway.spool.records import Accepted, Rejected, StoreOutcome
from gateway.spool.sealing import Sealer

log = logging.getLogger("hl7gw.spool.journal")


class JournaledWrites:
    """The journal, the rows journaled but not yet in SQLite, and the next ids."""

    def __init__(self, folder: Path, segment_bytes: int, sealer: Sealer) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.sealer = sealer
        self.journal: Journal | None = None
        self.replayed = 0  # records indexed at start (what a crash left unindexed)
        self.unindexed: list[Entry] = []
        self._unindexed_seq = 0
        self._ids: writes.NextIds | None = None

    def open(self, conn: sqlite3.Connection) -> None:
        """Open the journal and index what SQLite lacks of it. Raises SpoolError (or
        EncryptionError when the key cannot open the records to replay)."""
        spool_id, indexed_seq = conn.execute(
            "SELECT spool_id, indexed_seq FROM journal_state WHERE id = 1").fetchone()
        journal = Journal(self.folder, spool_id=int(spool_id),
                          segment_bytes=self.segment_bytes)
        found = journal.open(int(indexed_seq))
        try:
            keyring = self.sealer.keyring
            if found:
                unseal = keyring.decrypt if keyring is not None else None
                entries = [journal_records.decode(payload, unseal) for _, payload in found]
                writes.index_entries(conn, entries, found[-1][0], durable=True,
                                     sealer=self.sealer)
                log.warning("journal records indexed at start", extra={
                    "records": len(found), "first_seq": found[0][0],
                    "last_seq": found[-1][0]})
            if keyring is not None and any(
                    not journal_records.is_sealed(payload) for _, payload in journal):
                # Encryption was just turned on: records written clear must not wait a
                # whole segment of traffic to be overwritten.
                writes.make_durable(conn)
                journal.start_fresh_segment()
                journal.recycle(journal.next_seq - 1)
            journal.recycle(int(found[-1][0]) if found else int(indexed_seq))
        except BaseException:
            journal.close()
            raise
        self.replayed = len(found)
        self.journal = journal
        self._ids = writes.NextIds(conn)

    def store_batch(self, conn: sqlite3.Connection, rows: list[Accepted | Rejected]
                    ) -> list[StoreOutcome]:
        """Plan the batch against SQLite, then append its rows to the journal: durable
        when this returns. The caller indexed what an earlier failure left unindexed
        first (else the duplicate check would not see it)."""
        assert self.journal is not None and self._ids is not None and not self.unindexed
        planned = writes.plan_batch(conn, rows, self._ids, self.sealer)
        entries = [entry for _, entry in planned if entry is not None]
        if entries:
            keyring = self.sealer.keyring
            seal = keyring.encrypt if keyring is not None else None
            self._unindexed_seq = self.journal.append(
                [journal_records.encode(entry, seal) for entry in entries])
            self.unindexed = entries
        return [outcome for outcome, _ in planned]

    def index(self, conn: sqlite3.Connection, durable: bool = False) -> bool:
        """Insert the journaled rows into SQLite (no fsync of its own unless ``durable``,
        or a segment has filled). True when segments were recycled (a spare is due)."""
        if self.journal is None or not self.unindexed:
            return False
        durable = durable or len(self.journal.segments) > 1
        writes.index_entries(conn, self.unindexed, self._unindexed_seq, durable=durable,
                             sealer=self.sealer)
        self.unindexed = []
        return bool(durable and self.journal.recycle(self._unindexed_seq))

    def close(self) -> None:
        """Close the journal's files (its segments stay)."""
        if self.journal is not None:
            self.journal.close()
            self.journal = None
