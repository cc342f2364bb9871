"""The audit log: who saw which message body, who replayed what, who logged in.

The console writes it for its users; ``hl7gw replay`` appends to the same file (the
gateway config's ``console.audit_path``) with the OS user as the actor, through the one
replay service (``gateway.replay``), so a replay leaves the same line whichever way it came.

One JSON object per line, appended, flushed and fsynced before the action's answer goes
out — a body view that cannot be recorded is refused (``AuditError``), because an
unrecorded look at patient data is worse than no look. Entries name row ids and filters,
never message content.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError


class AuditError(GatewayError):
    """The audit log could not be written; the audited action is refused."""


class AuditLog:
    """Append-only JSON lines at ``path`` (parent folders created, file mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def entry(self, *, user: str, role: str, action: str, peer: str,
              targets: list[int] | None = None, filter: dict[str, Any] | None = None,
              outcome: str | None = None) -> dict[str, Any]:
        """The record for one action (a dict, so tests and callers can compare)."""
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "user": user, "role": role, "action": action, "peer": peer}
        if targets is not None:
            record["targets"] = targets
        if filter is not None:
            record["filter"] = filter
        if outcome is not None:
            record["outcome"] = outcome
        return record

    def check(self) -> None:
        """Raise AuditError now if the log cannot be opened for appending (before an action
        whose record must follow it, so the action is refused rather than left unrecorded)."""
        self._write(b"")

    async def writable(self) -> None:
        """``check`` off the event loop."""
        await asyncio.to_thread(self.check)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably; raises AuditError when it cannot."""
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        self._write(line)

    def _write(self, line: bytes) -> None:
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    if line:
                        os.write(fd, line)
                        os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditError(f"{self.path}: cannot write the audit log: "
                                 f"{exc.strerror or exc}") from exc

    async def record(self, **fields: Any) -> dict[str, Any]:
        """Build and append a record off the event loop (fsync waits for the disk)."""
        record = self.entry(**fields)
        await asyncio.to_thread(self.append, record)
        return record

    def latest(self, count: int = 200) -> list[dict[str, Any]]:
        """The newest ``count`` records, newest first (unreadable lines are skipped)."""
        try:
            with self.path.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - 512 * 1024))
                tail = fh.read().splitlines()
        except FileNotFoundError:
            return []
        if size > 512 * 1024 and tail:
            tail = tail[1:]  # the first line read may be cut
        found: deque[dict[str, Any]] = deque(maxlen=count)
        for raw in tail:
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            if isinstance(item, dict):
                found.append(item)
        return list(reversed(found))
