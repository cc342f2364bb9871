"""The spool's one boundary to SQLite: transactions, and ``sqlite3.Error`` -> ``SpoolError``.

Every write runs inside :func:`transaction`: ``BEGIN IMMEDIATE`` (the write lock is taken
up front, so a busy spool waits in ``busy_timeout`` instead of failing at ``COMMIT``),
``COMMIT`` on success, ``ROLLBACK`` on any error. A statement that fails half-way (disk
full, an I/O error, a constraint) must not leave the connection inside a transaction:
the next ``BEGIN`` would fail with "cannot start a transaction within a transaction" and
every later intake commit with it, until a restart.

Every call into SQLite, reads included, runs inside :func:`spool_errors`, which turns
``sqlite3.Error`` into :class:`SpoolError` with a message that tells the operator what to
do. Intake answers a ``SpoolError`` with AE (ERR 207), so senders keep their message and
resend; nothing is ACKed that is not on disk.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.errors import SpoolError

log = logging.getLogger("hl7gw.spool")

# Primary SQLite result codes (https://sqlite.org/rescode.html) and what an operator does.
_ADVICE = {
    5: "another process holds the spool's write lock (hl7gw replay, a backup, a second "
       "gateway on the same file?); it is retried, and refused with AE meanwhile",
    6: "the spool table is locked by another connection; retried, refused with AE meanwhile",
    8: "the spool file or its folder is read-only; make it writable for the gateway's user",
    10: "the disk under the spool reported an I/O error; check the disk and the kernel log",
    11: "the spool file is damaged; stop the gateway, move the file aside and restore it "
        "from a backup (or start an empty spool)",
    13: "the disk holding the spool is full; free space there (or grow the volume): until "
        "then intake refuses messages with AE (ERR 207) and senders resend, no restart needed",
    14: "the spool file cannot be opened; check that its folder exists and is writable",
    26: "the file at spool.path is not an SQLite database; point spool.path at the spool",
}


def advice(exc: sqlite3.Error) -> str:
    """What an operator should do about ``exc`` (empty when SQLite gave no known code)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return _ADVICE.get(code & 0xFF, "") if isinstance(code, int) else ""


@contextmanager
def spool_errors(path: Path, doing: str) -> Iterator[None]:
    """Turn ``sqlite3.Error`` raised inside into ``SpoolError`` naming the file and a remedy."""
    try:
        yield
    except sqlite3.Error as exc:
        hint = advice(exc)
        name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        raise SpoolError(f"spool {path}: {doing} failed ({name}: {exc})"
                         + (f"; {hint}" if hint else "")) from exc


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` if anything inside (or COMMIT) fails.

    The connection must be in autocommit mode (``isolation_level=None``), so that this is
    the only place that opens and closes transactions.
    """
    if conn.in_transaction:
        # Only reachable if a rollback below itself failed: start clean rather than stuck.
        _rollback(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open (SQLite ends some on its own, e.g. FULL)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            # The error that brought us here is the one to report; the next transaction()
            # retries the rollback before it begins.
            pass


class FailureLog:
    """Logs what a failing spool says to do: at once, then once per ``interval_s``, and
    the recovery once, so a full disk that refuses every frame does not flood the log.

    SQLite's messages name tables, columns and files, never values: no PHI.
    """

    def __init__(self, what: str, interval_s: float = 30.0) -> None:
        self.what = what
        self.interval_s = interval_s
        self.failing = False
        self._logged_at = 0.0
        self._unlogged = 0

    def failed(self, exc: SpoolError) -> None:
        """Note a failure; log it unless one was logged less than ``interval_s`` ago."""
        now = time.monotonic()
        if self.failing and now - self._logged_at < self.interval_s:
            self._unlogged += 1
            return
        log.error(f"spool {self.what} failing", extra={
            "error": str(exc), "failures_not_logged": self._unlogged})
        self.failing, self._logged_at, self._unlogged = True, now, 0

    def succeeded(self) -> None:
        """Note a success; log the recovery if the last call had failed."""
        if self.failing:
            self.failing = False
            log.warning(f"spool {self.what} working again",
                        extra={"failures_not_logged": self._unlogged})
            self._unlogged = 0
