"""WAL checkpoints on a thread of their own, not inside intake's commits.

SQLite's automatic checkpoint runs in whichever connection commits past 1,000 WAL pages:
here the spool's writer, between a batch's journal commit and the next one. Copying the
pages back and fsyncing the database file takes milliseconds, and every sender waiting for
an ACK waits through it (ACK p99 went from ~3 ms to ~12 ms with 8 senders once the
spool's rows carried two more indexes). The writer's connection therefore turns
``wal_autocheckpoint`` off and this thread checkpoints instead, with its own connection,
every ``interval_s`` while the WAL holds anything (a pass with nothing new to copy costs
next to nothing; the WAL file keeps its size and is reused). A ``PASSIVE`` checkpoint
runs alongside the writer and readers (WAL mode lets it), so nothing waits for it; what it
cannot copy yet (a reader still needs older pages) it copies on a later pass.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("hl7gw.spool")

INTERVAL_S = 0.5  # at 5,000 msg/s about as many pages as SQLite's default 1,000


class Checkpointer:
    """Checkpoints ``path``'s WAL from a daemon thread; ``stop()`` ends it."""

    def __init__(self, path: Path, interval_s: float = INTERVAL_S) -> None:
        self.path = path
        self.wal = Path(f"{path}-wal")
        self.interval_s = interval_s
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-checkpoint",
                                        daemon=True)

    def start(self) -> None:
        """Start watching the WAL."""
        self._thread.start()

    def stop(self) -> None:
        """End the thread (the last connection's close checkpoints what is left)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        failed = False
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    if not self.wal.exists() or self.wal.stat().st_size == 0:
                        continue
                    if conn is None:
                        conn = sqlite3.connect(self.path, isolation_level=None,
                                               check_same_thread=False)
                        conn.execute("PRAGMA busy_timeout=1000")
                        conn.execute("PRAGMA synchronous=FULL")
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                    failed = False
                except (OSError, sqlite3.Error) as exc:
                    if not failed:  # once per run of failures; the next pass tries again
                        log.warning("spool checkpoint failed",
                                    extra={"error_class": type(exc).__name__})
                    failed = True
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
