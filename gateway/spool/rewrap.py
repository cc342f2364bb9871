"""``hl7gw keys rewrap``: seal every stored value under the current key, in place.

Two jobs, one pass: values under an older key after ``hl7gw keys rotate``, and clear
values of a spool written before encryption was turned on (the in-place migration). Rows
are taken ``CHUNK`` at a time, each chunk in a short transaction, so a gateway running on
the same spool waits for one chunk at most. Each update is a compare-and-set on the value
read: if the gateway changed it meanwhile (an outbound ACK recorded), the new value,
already sealed under the current key, is left alone.

The old values must not survive in the file either: the pass runs with SQLite's
``secure_delete`` (freed space is overwritten with zeros) and ends with a checkpoint that
truncates the WAL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.spool.sealing import Sealer
from gateway.spool.search import search_key
from gateway.spool.tx import transaction

CHUNK = 500
# table -> (the SELECT list's key columns, the sealed columns)
_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "messages": ("id", ("raw", "ack")),
    "rejected": ("id", ("raw", "ack")),
    "outbound": ("id, destination, event_id", ("resource", "message", "ack")),
}


@dataclass
class RewrapCount:
    """Values sealed again (or for the first time), per table, and values already current."""

    sealed: dict[str, int] = field(default_factory=dict)
    current: int = 0

    @property
    def total(self) -> int:
        """Values sealed by this pass."""
        return sum(self.sealed.values())


def rows_to_visit(conn: sqlite3.Connection) -> int:
    """How many rows a pass reads (for a progress bar)."""
    return sum(int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in _TABLES)


def rewrap(conn: sqlite3.Connection, sealer: Sealer,
           progress: Callable[[int], None] | None = None) -> RewrapCount:
    """Seal every value of every table under ``sealer``'s current key; what was done."""
    count = RewrapCount()
    conn.execute("PRAGMA secure_delete=ON")
    try:
        for table, (keys, columns) in _TABLES.items():
            count.sealed[table] = 0
            after = 0
            while True:
                rows = conn.execute(
                    f"SELECT {keys}, {', '.join(columns)} FROM {table} WHERE id > ?"
                    " ORDER BY id LIMIT ?", (after, CHUNK)).fetchall()
                if not rows:
                    break
                with transaction(conn):
                    for row in rows:
                        sealed, current = _rewrap_row(conn, sealer, table, columns, row)
                        count.sealed[table] += sealed
                        count.current += current
                after = int(rows[-1]["id"])
                if progress is not None:
                    progress(len(rows))
        search_key(conn, sealer)  # the search index's key, sealed under the current key
    finally:
        conn.execute("PRAGMA secure_delete=OFF")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return count


def _rewrap_row(conn: sqlite3.Connection, sealer: Sealer, table: str,
                columns: tuple[str, ...], row: sqlite3.Row) -> tuple[int, int]:
    sealed = current = 0
    for column in columns:
        value = row[column]
        if value is None:
            continue
        value = bytes(value)
        if not sealer.needs_rewrap(value):
            current += 1
            continue
        place = (f"outbound:{row['destination']}:{row['event_id']}:{column}"
                 if table == "outbound" else f"{table}:{row['id']}:{column}")
        fresh = sealer.seal(sealer.open(value, place), place)
        sealed += conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ? AND {column} = ?",
                               (fresh, row["id"], value)).rowcount
    return sealed, current
