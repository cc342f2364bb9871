"""The spool's journal side: what the group-commit writer does when a journal is in front
of SQLite (gateway/spool/journal.py for the files, docs/journal.md for the design).

- :meth:`JournaledWrites.open`: recovery, before intake opens. The journal's records past
  ``journal_state.indexed_seq`` are inserted (one durable commit), and if encryption was
  just turned on, segments holding clear records are retired at once.
- :meth:`JournaledWrites.store_batch`: the commit intake's ACK waits for. Duplicates are
  decided against SQLite (which holds every earlier batch: see :meth:`index`), ids are
  given, the records are appended with one ``fdatasync``.
- :meth:`JournaledWrites.index`: the journaled rows into SQLite with no fsync of its own,
  with the journal position they reach, many batches in one transaction: when
  :data:`INDEX_ROWS` rows wait, a segment has filled, a reader needs them, or
  :data:`INDEX_DELAY_S` after the ACKs (the spool's writer keeps that timer). Once a
  segment has filled, the insert is made durable (which makes every earlier one durable
  too) and the full segments are recycled.

Why not one SQLite transaction per journal commit: each wrote the table's and every
index's last pages again into the WAL (tens of KiB for a 1 KiB message), and the disk
flush that the next ACK waits for had to carry those bytes too. Measured with a lone
sender (``hl7gw bench intake``): see docs/journal.md.

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

# Journaled rows that make the next commit index first. The insert runs on the event loop
# (20-35 us a row, measured): 64 rows hold ACKs back for about 2 ms at most, where 256
# rows held them for 5-9 ms. Paired runs of 8 senders: ACK p99 0.4-0.8 ms lower, msg/s and CPU per
# message the same within the noise (docs/journal.md).
INDEX_ROWS = 64
INDEX_DELAY_S = 0.02  # the longest a row waits after its ACK before SQLite gets it


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
        # The unindexed accepted rows by (sender, control id), for the duplicate check.
        self._by_key: dict[tuple[str, str], list[tuple[str, int, bytes]]] = {}
        self.failed = False  # the last index attempt failed: refuse batches until one works
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
        """Plan the batch against SQLite and the rows journaled but not yet in it, then
        append its rows to the journal: durable when this returns. The caller indexed
        first when :meth:`index_due` said so (after a failed index, that raises)."""
        assert self.journal is not None and self._ids is not None and not self.failed
        planned = writes.plan_batch(conn, rows, self._ids, self.sealer, self._by_key)
        entries = [entry for _, entry in planned if entry is not None]
        if entries:
            keyring = self.sealer.keyring
            seal = keyring.encrypt if keyring is not None else None
            self._unindexed_seq = self.journal.append(
                [journal_records.encode(entry, seal) for entry in entries])
            self.unindexed.extend(entries)
            for entry in entries:
                if isinstance(row := entry.row, Accepted):
                    self._by_key.setdefault((row.sender, row.control_id), []).append(
                        (row.sha256, entry.id, row.ack))
        return [outcome for outcome, _ in planned]

    def index_due(self) -> bool:
        """Whether the journaled rows go into SQLite before the next batch: enough of
        them, a full segment to recycle, or a failed attempt to retry (which raises
        again while SQLite still fails, and the batch is refused)."""
        return bool(self.unindexed) and (
            self.failed or len(self.unindexed) >= INDEX_ROWS
            or (self.journal is not None and len(self.journal.segments) > 1))

    def index(self, conn: sqlite3.Connection, durable: bool = False) -> bool:
        """Insert the journaled rows into SQLite (no fsync of its own unless ``durable``,
        or a segment has filled). True when segments were recycled (a spare is due)."""
        if self.journal is None or not self.unindexed:
            return False
        durable = durable or len(self.journal.segments) > 1
        try:
            writes.index_entries(conn, self.unindexed, self._unindexed_seq,
                                 durable=durable, sealer=self.sealer)
        except BaseException:
            self.failed = True
            raise
        self.failed = False
        self.unindexed = []
        self._by_key = {}
        return bool(durable and self.journal.recycle(self._unindexed_seq))

    def close(self) -> None:
        """Close the journal's files (its segments stay)."""
        if self.journal is not None:
            self.journal.close()
            self.journal = None
