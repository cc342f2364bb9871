"""The spool's outbound queue: results for the EHR destinations (gateway/outbound/), as
methods of :class:`~gateway.spool.store.Spool` (SQL in gateway/spool/outbound.py).

A mixin, so the queue's methods sit apart from intake's writer while running on the same
two connections and threads, through the same error boundary.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from gateway.spool import outbound
from gateway.spool.outbound import DestinationDepth, OutboundItem, OutboundRow, OutboundStatus
from gateway.spool.sealing import Sealer

T = TypeVar("T")


class OutboundQueue:
    """Queue, send-state and replay of outbound rows; mixed into ``Spool``."""

    sealer: Sealer

    if TYPE_CHECKING:
        async def _run(self, doing: str, fn: Callable[..., T], *args: object) -> T: ...
        async def _read(self, doing: str, fn: Callable[..., T], *args: object) -> T: ...
        def _db(self) -> sqlite3.Connection: ...

    async def queue_outbound(self, items: list[OutboundItem]) -> int:
        """Commit results for the destinations durably (idempotent per destination and
        event); returns the rows added. Raises SpoolError."""
        return await self._run("queue outbound messages", outbound.queue, self._db(), items,
                               self.sealer)

    async def queued_outbound(self, destination: str, limit: int) -> list[OutboundRow]:
        """The oldest ``limit`` messages queued for ``destination``, in order."""
        return await self._run("read the outbound queue", outbound.next_queued, self._db(),
                               destination, limit, self.sealer)

    async def mark_outbound_sent(self, sent: list[tuple[int, int, str, bytes]]) -> None:
        """Record credited messages, (id, attempts, ACK code, ACK) each, in one commit."""
        await self._run("record outbound ACKs", outbound.mark_sent, self._db(), sent,
                        self.sealer)

    async def settle_outbound(self, row_id: int, *, status: OutboundStatus, attempts: int,
                              ack_code: str | None = None, ack: bytes | None = None,
                              error: str | None = None) -> None:
        """Record an outbound attempt's outcome (``queued`` again to retry)."""
        await self._run("record an outbound attempt", outbound.settle, self._db(), row_id,
                        status, attempts, ack_code, ack, error, self.sealer)

    async def requeue_outbound(self, ids: list[int],
                               messages: dict[int, bytes] | None = None) -> list[int]:
        """Queue failed or sent outbound rows again (replay); returns their new ids."""
        return await self._run("replay outbound messages", outbound.requeue, self._db(),
                               ids, messages or {}, self.sealer)

    async def outbound_resource(self, row_id: int) -> bytes | None:
        """The FHIR result an outbound row was rendered from."""
        return await self._read("read an outbound result", outbound.resource_of, row_id,
                                self.sealer)

    async def outbound_depths(self) -> dict[str, DestinationDepth]:
        """Queued/failed/sent per destination (off the event loop)."""
        return await self._read("count outbound messages", outbound.depths)

    async def find_outbound(self, *, destination: str | None = None,
                            status: str | None = None, limit: int = 100,
                            before_id: int | None = None) -> list[OutboundRow]:
        """Outbound rows newest first (off the event loop)."""
        return await self._read("list outbound messages", _find_outbound, destination,
                                status, limit, before_id, self.sealer)

    async def get_outbound(self, row_id: int) -> OutboundRow | None:
        """One outbound row."""
        return await self._read("read an outbound message", outbound.get, row_id,
                                self.sealer)

    async def prune_outbound(self, sent_before: float) -> int:
        """Delete outbound rows sent before ``sent_before``."""
        return await self._run("prune outbound messages", outbound.prune, self._db(),
                               sent_before)


def _find_outbound(conn: sqlite3.Connection, destination: str | None, status: str | None,
                   limit: int, before_id: int | None, sealer: Sealer) -> list[OutboundRow]:
    return outbound.find(conn, destination=destination, status=status, limit=limit,
                         before_id=before_id, sealer=sealer)
