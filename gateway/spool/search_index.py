"""The spool's search face: queries off the event loop and the background term indexer.

The indexer follows the ``messages`` table by id: it reads the rows after its bookmark
(``search_state.indexed_upto``) in chunks of ``INDEX_CHUNK`` on the spool's side thread,
opens and tokenizes them there, and hands the terms to the spool's writer connection in
one short transaction with the new bookmark. Intake is never made to wait long for it:
the expensive part (decrypting, parsing, hashing) runs off the loop, the write is one
``executemany`` per chunk serialised with intake's commits, while intake is busy it rests
between chunks, and when it has caught up it sleeps until the spool says rows were stored.
After a restart it starts from its bookmark, so rows stored while it was down (or by
another process) are indexed then.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from gateway.errors import SpoolError
from gateway.spool import search
from gateway.spool.records import MessageFilter, MessageInfo, RejectedInfo
from gateway.spool.sealing import Sealer
from gateway.spool.search import SearchPage, SearchQuery

T = TypeVar("T")


class Spool(Protocol):
    """What the search needs of :class:`gateway.spool.store.Spool` (a protocol, so that
    store.py can own a SpoolSearch without an import cycle)."""

    sealer: Sealer
    rows_committed: int

    def on_indexed(self, callback: Callable[[], None]) -> None: ...
    def _db(self) -> sqlite3.Connection: ...
    def _run(self, doing: str, fn: Callable[..., T], *args: Any) -> Awaitable[T]: ...
    def _read(self, doing: str, fn: Callable[..., T], *args: Any) -> Awaitable[T]: ...

log = logging.getLogger(__name__)
IDLE_POLL_S = 2.0  # also look now and then: another process may have stored rows
PAUSE_RATIO = 9.0  # while intake is busy: rest nine times as long as a chunk took


class SpoolSearch:
    """Searches over one spool and the indexer that keeps its terms current."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._key: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.indexed_upto = 0
        self._upto: int | None = None  # the bookmark as last read or written
        self.indexed_rows = 0  # messages indexed by this process (for measurements)

    async def key(self) -> bytes:
        """The search key (read, and sealed if need be, on first use)."""
        if self._key is None:
            spool = self._spool
            self._key = await spool._run("read the search key", search.search_key,
                                         spool._db(), spool.sealer)
        return self._key

    # -- the indexer ----------------------------------------------------------------------

    def start(self) -> None:
        """Start indexing in the background (the spool must be started)."""
        if self._task is None:
            self._spool.on_indexed(self._wake.set)
            self._task = asyncio.create_task(self._run_indexer(), name="spool-search-index")

    async def stop(self) -> None:
        """Stop the indexer (what it wrote stays; it resumes from its bookmark)."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def catch_up(self) -> int:
        """Index every row stored so far, now; the rows indexed (tests, the bench)."""
        done = 0
        while True:
            step = await self.index_step()
            if step == 0:
                return done
            done += step

    async def index_step(self) -> int:
        """Index one chunk after the bookmark; how many messages it covered."""
        spool, key = self._spool, await self.key()
        if self._upto is None:  # this process is the only one writing it: read it once
            self._upto = await spool._read("read the search bookmark", search.indexed_upto)
        start = self._upto
        upto, pairs = await spool._read("read messages to index", search.read_chunk,
                                        spool.sealer, key, start)
        if upto == start:
            self.indexed_upto = start
            return 0
        await spool._run("write search terms", search.write_terms, spool._db(), upto, pairs)
        self.indexed_upto = self._upto = upto
        self.indexed_rows += upto - start
        return upto - start

    async def _run_indexer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                committed, started = self._spool.rows_committed, loop.time()
                if await self.index_step():
                    # While intake is storing rows, index at most 1/(1+PAUSE_RATIO) of the
                    # time (its Python work shares the GIL with the event loop); idle, go on
                    # at once. Measured by `hl7gw bench search` (docs/search.md).
                    busy = self._spool.rows_committed != committed
                    await asyncio.sleep((loop.time() - started) * PAUSE_RATIO if busy else 0)
                    continue
            except SpoolError:
                log.warning("search indexing failed; retrying in %.0f s", IDLE_POLL_S)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)
            except TimeoutError:
                pass

    # -- searching ------------------------------------------------------------------------

    async def find(self, query: SearchQuery, *, limit: int = 50,
                   before_id: int | None = None) -> SearchPage:
        """One page of rows matching ``query``, newest first (page on with next_before)."""
        if query.kind == "text":
            return await self._spool._read("search message text", search.scan,
                                           self._spool.sealer, query, limit, before_id)
        rows: list[MessageInfo] = await self._spool._read(
            "search messages", search.find, await self.key(), query, limit, before_id)
        return SearchPage(rows, next_before=rows[-1].id if len(rows) == limit else None)

    async def ids(self, query: SearchQuery, cap: int) -> tuple[list[int], bool]:
        """Ids matching (newest first), at most ``cap``, and whether more matched."""
        return await self._spool._read("select messages", search.ids, await self.key(),
                                        self._spool.sealer, query, cap)

    async def count(self, query: SearchQuery) -> int:
        """How many rows match (text: within the rows one scan reads)."""
        return await self._spool._read("count messages", search.count, await self.key(),
                                        self._spool.sealer, query)

    async def behind(self) -> int:
        """Messages stored but not indexed yet (a search may miss these newest rows)."""
        upto = await self._spool._read("read the search bookmark", search.indexed_upto)
        newest = await self._spool._read("read the newest id", search.newest_id)
        return max(0, newest - upto)

    async def find_rejected(self, where: MessageFilter, *, limit: int = 50,
                            before_id: int | None = None) -> list[RejectedInfo]:
        """Refused messages, the sender matched as the Rejected page shows it."""
        return await self._spool._read("search refused messages", search.find_rejected,
                                        where, limit, before_id)

    async def rejected_senders(self) -> list[str]:
        """Senders of recent refusals (suggestions for the Rejected page's filter)."""
        return await self._spool._read("list refusing senders", search.rejected_senders)
