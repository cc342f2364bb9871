"""Replay: queue spooled messages to be mapped and published again, and audit who did it.

One service for both ways in: the console/API (a console user, from a browser or a token)
and ``hl7gw replay`` (the OS user at a shell, on the spool file of a running gateway).
Both queue rows the same way and append the same audit line to the same file::

    {"time": ..., "user": "olga", "role": "operator", "action": "replay",
     "peer": "10.1.2.3:51234", "targets": [1042, 1043], "filter": {"status": "failed"}}

(from the CLI: ``"user": "<OS user>", "role": "cli", "peer": "cli@<host>"``). The audit
log is checked before anything is queued, so a replay that could not be recorded does not
happen; a spool error part way is still recorded (with what was queued) and re-raised.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.audit import AuditLog
from gateway.spool import MessageFilter, MessageInfo, Spool

ACTION = "replay"
CHUNK_IDS = 10_000  # ids per spool call: each is an SQL variable
PAGE = 1000  # rows per find() page when listing every match


@dataclass(frozen=True)
class Actor:
    """Who replays, as the audit log names them."""

    user: str
    role: str
    peer: str

    @classmethod
    def os_user(cls) -> Actor:
        """The person running ``hl7gw replay``: their login name on this host."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # a container uid with no passwd entry
            user = f"uid {os.getuid()}"
        return cls(user=user, role="cli", peer=f"cli@{socket.gethostname()}")


def filter_record(flt: MessageFilter) -> dict[str, Any]:
    """A filter for the audit log: only the fields that were set."""
    return {k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(flt).items() if v not in (None, ())}


def chunks(ids: Sequence[int], size: int = CHUNK_IDS) -> list[tuple[int, ...]]:
    """``ids`` in tuples of at most ``size``."""
    return [tuple(ids[i:i + size]) for i in range(0, len(ids), size)]


class ReplayService:
    """Queues rows for replay on ``spool`` and records each replay in ``audit``.

    ``wake`` nudges an in-process publisher (the console's); the CLI has none, the
    running gateway's publisher finds the rows within about a second.
    """

    def __init__(self, spool: Spool, audit: AuditLog,
                 wake: Callable[[], None] | None = None) -> None:
        self.spool = spool
        self.audit = audit
        self._wake = wake

    async def matching(self, flt: MessageFilter) -> list[MessageInfo]:
        """Every row ``flt`` matches, in any status (newest first), for a preview."""
        out: list[MessageInfo] = []
        before: int | None = None
        while True:
            page = await self.spool.find(flt, limit=PAGE, before_id=before)
            out += page
            if len(page) < PAGE:
                return out
            before = page[-1].id

    async def replay(self, flt: MessageFilter, actor: Actor, *,
                     only: Sequence[int] | None = None) -> list[int]:
        """Queue the published/failed rows ``flt`` matches (and, with ``only``, among those
        ids: what a user confirmed); one audit line names them. Returns the ids queued."""
        await self.audit.writable()
        queued: list[int] = []
        outcome: str | None = None
        try:
            if only is None:
                queued += await self.spool.replay(flt)
            else:
                for part in chunks(sorted(only)):
                    queued += await self.spool.replay(dataclasses.replace(flt, ids=part))
        except Exception as exc:
            outcome = f"stopped after {len(queued)} queued: {type(exc).__name__}"
            raise
        finally:
            await self.audit.record(user=actor.user, role=actor.role, action=ACTION,
                                    peer=actor.peer, targets=queued,
                                    filter=filter_record(flt), outcome=outcome)
        if queued and self._wake is not None:
            self._wake()
        return queued

    async def replay_many(self, ids: Sequence[int], actor: Actor, *, action: str,
                          filter: dict[str, Any] | None = None, note: str = "") -> list[int]:
        """Queue the published/failed rows among ``ids`` (a confirmed bulk selection) as
        ``replay`` does, with one audit line naming ``action``, how many were selected and
        queued and the id range, not every id (a selection may hold 10,000); ``note`` is
        added to the line's outcome."""
        await self.audit.writable()
        queued: list[int] = []
        stopped = ""
        try:
            for part in chunks(sorted(ids)):
                queued += await self.spool.replay(MessageFilter(ids=part))
        except Exception as exc:
            stopped = f"; stopped part way: {type(exc).__name__}"
            raise
        finally:
            span = f", ids {min(ids)}-{max(ids)}" if ids else ""
            await self.audit.record(user=actor.user, role=actor.role, action=action,
                                    peer=actor.peer, filter=filter,
                                    outcome=f"{len(queued)} queued of {len(ids)} "
                                            f"selected{span}{note}{stopped}")
        if queued and self._wake is not None:
            self._wake()
        return queued
