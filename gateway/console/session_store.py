"""Console sessions on disk: a small SQLite file, so a gateway restart keeps people logged in.

Only the SHA-256 of the session cookie's value is stored (the cookie is 32 random bytes,
so a plain hash cannot be reversed or guessed): a copy of the file does not let anyone
in. Each row holds who, which role, the CSRF token forms must echo, how the user signed
in (``token`` or ``oidc``) and when the session ends; expired rows are deleted as new
sessions are made and whenever one is looked up past its end.

The file is created with mode 0600 (SQLite gives its journal the same mode). Lookups are
one indexed read of a tiny table; writes (a login, a logout) commit with
``synchronous=FULL`` so a session that was answered survives a power cut. ``:memory:``
keeps everything in the process, for tests and one-off tools.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import GatewayError

MEMORY = ":memory:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_sessions (
    id_sha256  TEXT PRIMARY KEY,
    user       TEXT NOT NULL,
    role       TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    method     TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_expiry ON console_sessions (expires_at);
"""


class SessionStoreError(GatewayError):
    """The console's session file cannot be opened or written."""


@dataclass(frozen=True)
class StoredSession:
    """One row: everything about a session except its id (only the id's hash is kept)."""

    user: str
    role: str
    csrf: str
    method: str
    created_at: float
    expires_at: float


def id_hash(session_id: str) -> str:
    """What the store keeps instead of the cookie's value."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class SessionStore:
    """Sessions by the hash of their id, in SQLite at ``path`` (or in memory)."""

    def __init__(self, path: Path | str = MEMORY) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None  # opened on first use

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, opened on first use (call with the lock held): a gateway that
        never sees a browser login makes no file."""
        if self._conn is not None:
            return self._conn
        try:
            if self.path != MEMORY:
                _create_private(Path(self.path))
            # One connection, used under the lock from whichever thread serves the request.
            conn = sqlite3.connect(str(self.path), check_same_thread=False,
                                   isolation_level=None)
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SessionStoreError(
                f"{self.path}: cannot open the console's session file ({exc}); make its "
                "folder writable for the gateway, or set console.sessions_path elsewhere"
            ) from exc
        self._conn = conn
        return conn

    def put(self, session_id: str, row: StoredSession) -> None:
        """Store a new session (and drop every expired one on the way)."""
        with self._lock, _writing(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM console_sessions WHERE expires_at <= ?",
                                 (row.created_at,))
                self._db.execute(
                    "INSERT OR REPLACE INTO console_sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (id_hash(session_id), row.user, row.role, row.csrf, row.method,
                     row.created_at, row.expires_at))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, session_id: str, now: float) -> StoredSession | None:
        """The live session with this id; an expired one is deleted and None returned."""
        key = id_hash(session_id)
        with self._lock, _writing(self.path):
            found = self._db.execute(
                "SELECT user, role, csrf, method, created_at, expires_at "
                "FROM console_sessions WHERE id_sha256 = ?", (key,)).fetchone()
            if found is None:
                return None
            row = StoredSession(*found)
            if row.expires_at <= now:
                self._db.execute("DELETE FROM console_sessions WHERE id_sha256 = ?", (key,))
                return None
            return row

    def delete(self, session_id: str) -> None:
        """Forget a session (logout); an unknown id is not an error."""
        with self._lock, _writing(self.path):
            self._db.execute("DELETE FROM console_sessions WHERE id_sha256 = ?",
                             (id_hash(session_id),))

    def prune(self, now: float) -> int:
        """Delete every expired session; how many went."""
        with self._lock, _writing(self.path):
            return self._db.execute("DELETE FROM console_sessions WHERE expires_at <= ?",
                                    (now,)).rowcount

    def count(self) -> int:
        """How many sessions are stored (expired ones not yet pruned included)."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM console_sessions").fetchone()[0])

    def close(self) -> None:
        """Close the file (a later call opens it again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _create_private(path: Path) -> None:
    """The folder and an empty file readable by the gateway's user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)  # an older file made with a looser umask is tightened too


@contextmanager
def _writing(path: Path | str) -> Iterator[None]:
    """Turns a SQLite failure inside a session operation into a SessionStoreError."""
    try:
        yield
    except sqlite3.Error as exc:
        raise SessionStoreError(f"{path}: the console's session file failed ({exc}); "
                                "check the disk and the file's permissions") from exc
