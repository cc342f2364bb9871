"""Where a trial reads messages from: the spool file, opened for reading only.

A trial changes nothing, so neither ``hl7gw profiles try`` nor the console opens the spool
the way the gateway does (``Spool.start`` migrates the schema, opens the journal and runs a
writer). ``ReadOnlySpool`` opens the SQLite file with ``mode=ro`` on a connection of its
own (beside a running gateway's, which it never holds up); when no ``-wal`` file exists
(no gateway has the spool open), with ``immutable=1`` too, because a read-only WAL reader
would otherwise leave empty ``-wal`` and ``-shm`` files behind. Bodies are opened with the
configured keys, as ``hl7gw replay`` opens them. Rows still only in the intake journal (a
gateway that stopped before indexing them) are not seen until the gateway runs again.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import quote

from gateway.errors import SpoolError
from gateway.spool import MessageFilter, MessageInfo, StoredBody, queries
from gateway.spool.sealing import Sealer

if TYPE_CHECKING:
    from gateway.keys.keyring import Keyring

T = TypeVar("T")


class MessageSource(Protocol):
    """What a trial reads: listings and bodies (``gateway.spool.Spool`` has both)."""

    async def find(self, where: MessageFilter, *, limit: int = 100,
                   before_id: int | None = None) -> list[MessageInfo]: ...

    async def body(self, row_id: int) -> StoredBody | None: ...


class ReadOnlySpool:
    """A spool file opened for reading only; ``close()`` when done."""

    def __init__(self, path: Path, keyring: Keyring | None = None) -> None:
        if not path.is_file():
            raise SpoolError(f"no spool at {path}: check spool.path in the config")
        self.path = path
        self.sealer = Sealer(keyring)
        immutable = "" if Path(f"{path}-wal").exists() else "&immutable=1"
        uri = f"file:{quote(str(path.resolve()))}?mode=ro{immutable}"
        try:
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.execute("SELECT 1 FROM messages LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot read the spool {path}: {exc} (is it a gateway "
                             "spool, and readable by you?)") from None
        # One query at a time, and close() waits for the one in flight (a trial cancelled
        # while its thread reads must not close the connection under it).
        self._lock = threading.Lock()
        self._closed = False

    async def find(self, where: MessageFilter, *, limit: int = 100,
                   before_id: int | None = None) -> list[MessageInfo]:
        """A page of metadata, newest first (``gateway.spool.queries.find``)."""
        return await asyncio.to_thread(self._guard, queries.find, self._conn, where, limit,
                                       before_id)

    async def senders(self) -> list[str]:
        """Every distinct ``sender`` value (``APP^..|FAC^..``), from the sender index.

        A skip scan (one index seek per sender), so a trial reads only the rows of the
        senders it wants instead of paging through the whole table: 500 messages of a
        sender with 1 row in 1,000 of a 500k-row, 1 GB spool took 34 s by paging, 4.9 s
        this way (most of it mapping).
        """
        return await asyncio.to_thread(self._guard, _senders, self._conn)

    async def body(self, row_id: int) -> StoredBody | None:
        """One row's bytes, opened with the keys."""
        return await asyncio.to_thread(self._guard, queries.body, self._conn, "messages",
                                       row_id, self.sealer)

    def _guard(self, fn: Callable[..., T], *args: object) -> T:
        with self._lock:
            if self._closed:
                raise SpoolError(f"the trial's connection to {self.path} is closed")
            try:
                return fn(*args)
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot read the spool {self.path}: {exc}") from None

    def close(self) -> None:
        """Close the connection (nothing was written); waits for a query in flight."""
        with self._lock:
            self._closed = True
            self._conn.close()


_SENDERS = """
WITH RECURSIVE s(x) AS (
  SELECT (SELECT min(sender) FROM messages)
  UNION ALL
  SELECT (SELECT min(sender) FROM messages WHERE sender > x) FROM s WHERE x IS NOT NULL
) SELECT x FROM s WHERE x IS NOT NULL LIMIT 100000
"""


def _senders(conn: sqlite3.Connection) -> list[str]:
    return [str(row[0]) for row in conn.execute(_SENDERS)]
