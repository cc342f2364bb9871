"""The spool's reads, as methods of :class:`~gateway.spool.store.Spool` (SQL in
gateway/spool/queries.py).

A mixin, as :class:`~gateway.spool.outbound_queue.OutboundQueue` is: the reads sit apart
from intake's writer while running through the same connections and error boundary.
``pending`` runs on the writer's connection (the publisher's reads follow its writes); the
console's searches run on the side connection, so a long one never holds up an ACK.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from gateway.spool import queries
from gateway.spool.records import (
    MessageFilter,
    MessageInfo,
    PendingRow,
    RejectedInfo,
    StoredBody,
)
from gateway.spool.sealing import Sealer

T = TypeVar("T")


class SpoolReads:
    """What the publisher and the console read from the spool; mixed into ``Spool``."""

    sealer: Sealer

    if TYPE_CHECKING:
        async def _run(self, doing: str, fn: Callable[..., T], *args: object) -> T: ...
        async def _read(self, doing: str, fn: Callable[..., T], *args: object) -> T: ...
        def _db(self) -> sqlite3.Connection: ...

    async def pending(self, limit: int = 500, after_id: int = 0) -> list[PendingRow]:
        """Unpublished rows in arrival order."""
        return await self._run("read pending rows", queries.pending, self._db(), limit,
                               after_id, self.sealer)

    async def find(self, where: MessageFilter, *, limit: int = 100,
                   before_id: int | None = None) -> list[MessageInfo]:
        """Accepted messages matching ``where``, newest first (page with ``before_id``)."""
        return await self._read("search messages", queries.find, where, limit, before_id)

    async def find_rejected(self, where: MessageFilter, *, limit: int = 100,
                            before_id: int | None = None) -> list[RejectedInfo]:
        """Refused messages matching ``where`` (sender, control id, times), newest first."""
        return await self._read("search refused messages", queries.find_rejected, where,
                                limit, before_id)

    async def body(self, row_id: int) -> StoredBody | None:
        """Raw bytes as received and the ACK sent, of an accepted message, or None."""
        return await self._read("read a message", queries.body, "messages", row_id,
                                self.sealer)

    async def rejected_body(self, row_id: int) -> StoredBody | None:
        """Raw bytes as received and the NAK sent, of a refused message, or None."""
        return await self._read("read a refused message", queries.body, "rejected", row_id,
                                self.sealer)

    async def counts(self) -> dict[str, int]:
        """Row counts by status plus rejected, for the console (off the event loop)."""
        return await self._read("count messages", queries.counts)
