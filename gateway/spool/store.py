"""The :class:`Spool`: its two connections, its threads, and the group-commit writer.

SQLite in WAL mode with ``synchronous=FULL``: a commit that returned survives a power cut.
Callers hand rows to an asyncio queue; one writer task takes everything queued and commits
it in one transaction (group commit), so many connections share one fsync instead of
serialising on it.

With a journal (``journal_dir``; the gateway's default, docs/journal.md) the commit that
intake's ACK waits for is the journal's: the batch's records written into a preallocated
segment with one ``fdatasync``. Shortly after the ACKs are on their way (at most
``INDEX_DELAY_S``, sooner when ``INDEX_ROWS`` rows wait or a reader needs them), the writer
inserts the rows of many commits into SQLite in one transaction without an fsync of its
own (``synchronous=NORMAL``), together with the journal position they reach; the duplicate
check sees the rows not yet inserted in memory. A crash in between loses nothing: on
start, the journal's records past the recorded position are inserted before intake opens.
Readers (publisher, console) see a row once it is indexed (every read indexes what waits
first), and :meth:`Spool.on_indexed` callbacks say when.

By default the commit runs on the event loop's own thread (``inline=True``): while it
waits for the disk, frames from other connections wait in their socket buffers and all
land in the next commit. Measured here with 8 senders waiting for each ACK, that gave
3,325 msg/s (71 % of a bare MLLP echo in the same run) against 1,247 msg/s (23 %) with a
writer thread, whose hand-offs cost more than the fsync they overlap. ``inline=False``
keeps the thread, for a slow disk where a blocked loop would hurt health checks.
A lone sender's rows skip the writer task's queue (gateway/spool/lone.py).

Every call into SQLite goes through :meth:`Spool._run` (writer connection) or
:meth:`Spool._read` (side connection), and both run it inside
:func:`~gateway.spool.tx.spool_errors`: callers see ``SpoolError`` only.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from gateway.errors import SpoolError
from gateway.spool import queries, rewrap, schema, writes
from gateway.spool.checkpoint import Checkpointer
from gateway.spool.journal import DEFAULT_SEGMENT_BYTES, Journal
from gateway.spool.journaled import INDEX_DELAY_S, JournaledWrites
from gateway.spool.lone import LoneSender
from gateway.spool.outbound_queue import OutboundQueue
from gateway.spool.reads import SpoolReads
from gateway.spool.records import (
    Accepted,
    MessageFilter,
    PublishedMark,
    Rejected,
    StoreOutcome,
)
from gateway.spool.rewrap import RewrapCount
from gateway.spool.sealing import Sealer
from gateway.spool.search_index import SpoolSearch
from gateway.spool.tx import FailureLog, spool_errors

if TYPE_CHECKING:
    from gateway.keys.keyring import Keyring

T = TypeVar("T")
_Item = tuple[Accepted | Rejected, "asyncio.Future[StoreOutcome]"]


def connect(path: Path) -> sqlite3.Connection:
    """A connection as the spool uses them: autocommit (see tx.py), rows by column name."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class Spool(SpoolReads, OutboundQueue):
    """Durable message store with group commit; start() before use, stop() to close."""

    def __init__(self, path: Path, *, max_batch: int = 512, inline: bool = True,
                 journal_dir: Path | None = None,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 keyring: Keyring | None = None) -> None:
        self.path = path
        # Bodies and ACKs sealed at rest with the keyring (docs/encryption.md), else clear.
        self.sealer = Sealer(keyring)
        self._journaled = (JournaledWrites(journal_dir, segment_bytes, self.sealer)
                           if journal_dir is not None else None)
        self._on_indexed: list[Callable[[], None]] = []
        self._spare: asyncio.Future[None] | None = None
        self._index_timer: asyncio.TimerHandle | None = None  # see _index_later
        self._index_task: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.max_batch = max_batch
        self.inline = inline
        # Loop turns the writer waits before taking the queue, so frames that arrived
        # together share a commit. Measured with 8 senders: 1 turn 2.4 rows per commit,
        # 3 turns 6.8 (+36 % msg/s); more adds latency for a lone sender without gain.
        self.gather_yields = 3 if inline else 0
        self._last_batch = 0
        self._writing = False  # the writer task holds a batch (between get and its end)
        self._lone = LoneSender()  # when a row may skip the writer task (inline only)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None  # WAL checkpoints off the writer
        # The console's and hl7gw replay's queries run on a connection and thread of their
        # own: a search through a big spool (0.6 s for 500k rows) must not hold up ACKs.
        self._side_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-read")
        self._side: sqlite3.Connection | None = None
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.commits = 0
        self.rows_committed = 0
        self._pending_rows = 0  # kept by the writer thread; read for the spool bound
        # The SpoolError's advice reaches the operator's log (callers log only its class).
        self._write_failures = FailureLog("writer connection")
        self._read_failures = FailureLog("console/replay connection")
        self.search = SpoolSearch(self)  # queries and the term indexer (search_index.py)

    async def start(self) -> None:
        """Open (or create, or migrate) the database, index what the journal holds beyond
        it, and start the group-commit writer."""
        self._loop = asyncio.get_running_loop()
        await self._run("open", self._open)
        self._checkpointer = Checkpointer(self.path)
        self._checkpointer.start()
        if self._journaled is not None:
            await self._run("open the journal", self._open_journal)
            self._prepare_spare()
        self._writer = asyncio.create_task(self._write_loop(), name="spool-writer")

    async def flush(self) -> None:
        """Put journaled rows into SQLite now (the writer does it right after each ACK),
        so that other connections and processes see every row stored so far."""
        if self._unindexed:
            await self._run("index journaled rows", self._index)

    @property
    def journal(self) -> Journal | None:
        """The intake journal, when there is one and it is open."""
        return self._journaled.journal if self._journaled is not None else None

    @property
    def replayed(self) -> int:
        """Journal records indexed at start: what a crash had left out of SQLite."""
        return self._journaled.replayed if self._journaled is not None else 0

    @property
    def _unindexed(self) -> bool:
        return self._journaled is not None and bool(self._journaled.unindexed)

    def on_indexed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the event loop) whenever stored rows become readable."""
        self._on_indexed.append(callback)

    async def stop(self) -> None:
        """Commit what is queued, then close; safe to call twice."""
        await self.search.stop()
        if self._writer is not None:
            await self._queue.join()
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        if self._index_timer is not None:
            self._index_timer.cancel()
            self._index_timer = None
        if self._index_task is not None:
            await asyncio.gather(self._index_task, return_exceptions=True)
        if self._spare is not None:
            await asyncio.gather(self._spare, return_exceptions=True)
        if self._journaled is not None:
            if self._conn is not None and self._unindexed:
                await self._run("index journaled rows", self._index)
            self._journaled.close()
        if self._checkpointer is not None:
            checkpointer, self._checkpointer = self._checkpointer, None
            await asyncio.to_thread(checkpointer.stop)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._run("close", conn.close)
        if self._side is not None:
            side, self._side = self._side, None
            await asyncio.get_running_loop().run_in_executor(
                self._side_executor, self._guarded, "close", side.close, ())
        self._executor.shutdown(wait=True)
        self._side_executor.shutdown(wait=True)

    # -- writes ---------------------------------------------------------------------------

    async def store(self, row: Accepted | Rejected) -> StoreOutcome:
        """Commit ``row`` durably; return only once it is on disk. Raises SpoolError."""
        if self._writer is None:
            raise SpoolError("spool is not started")
        if self.inline and not self._writing and self._queue.empty() \
                and self._lone.admits(row.peer):
            return self._commit_alone(row)
        fut: asyncio.Future[StoreOutcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((row, fut))
        return await fut

    def _commit_alone(self, row: Accepted | Rejected) -> StoreOutcome:
        """A lone sender's row committed at once, on the loop, without the writer task's
        hand-offs (gateway/spool/lone.py): its ACK leaves right after."""
        self._last_batch = 1
        try:
            outcome = self._guarded("commit", self._store_batch, ([row],))[0]
        except SpoolError:
            raise
        except Exception as exc:
            raise SpoolError(f"spool commit failed: {exc}") from exc
        self._after_commit()
        return outcome

    async def mark_published(self, marks: Iterable[PublishedMark]) -> None:
        """Mark rows published, with where they went and what mapping said."""
        await self._run("mark published", self._settle, writes.mark_published, list(marks))

    async def mark_failed(self, row_id: int, reason: str, summary: str = "{}") -> None:
        """Mark a row that cannot be mapped: kept with its reason, never published."""
        await self._run("mark failed", self._settle, writes.mark_failed, row_id, reason,
                        summary)

    async def record_failure(self, row_id: int, error: str) -> None:
        """Count a failed publish attempt and keep its reason (no PHI: error text only)."""
        await self._run("record a failure", writes.record_failure, self._db(), row_id, error)

    async def prune(self, *, published_before: float, rejected_before: float) -> int:
        """Delete published rows and refusals older than the given times; rows deleted."""
        return await self._run("prune", writes.prune, self._db(), published_before,
                               rejected_before)

    async def replay(self, where: MessageFilter) -> list[int]:
        """Queue published or failed rows matching ``where`` to be mapped and published again.

        Each gets ``replays + 1`` (so its events carry a new id, ``<event id>-r<n>``) and
        goes back to ``pending``; the publisher re-maps it with the profiles live then, in
        spool order. Rows already pending are left as they are. Returns the ids queued.
        Rows are found off the event loop and queued in short transactions of
        ``REPLAY_CHUNK`` rows, so intake's commits wait for one chunk at most.
        """
        ids = await self._read("replay", writes.replay, where)
        self._pending_rows += len(ids)
        return ids

    async def rewrap(self, progress: Callable[[int], None] | None = None) -> RewrapCount:
        """Seal every stored value under the current key (``hl7gw keys rewrap``): values
        under older keys, and clear ones of a spool from before encryption was on."""
        return await self._read("rewrap", rewrap.rewrap, self.sealer, progress)

    async def rewrap_size(self) -> int:
        """Rows a rewrap reads (for its progress bar)."""
        return await self._read("count rows", rewrap.rows_to_visit)

    # -- the tally of pending rows ------------------------------------------------------

    async def depth(self) -> int:
        """Number of rows waiting to be published (counted again: resets the tally)."""
        # hl7gw replay may have queued rows from another process: the tally follows.
        self._pending_rows = await self._run("count pending rows", queries.count_pending,
                                             self._db())
        return self._pending_rows

    @property
    def pending_rows(self) -> int:
        """Rows waiting to be published, as counted by the writer (no query)."""
        return self._pending_rows

    # -- the boundary: every SQLite call runs through _run or _read -----------------------

    async def _run(self, doing: str, fn: Callable[..., T], *args: object,
                   index_first: bool = True) -> T:
        """``fn(*args)`` on the writer connection's thread (or inline), errors mapped.

        Journaled rows not yet in SQLite are indexed first (unless ``index_first`` is
        false: intake's commit, which decides for itself): whoever stored a row reads it.
        """
        call: Callable[[], T] = functools.partial(self._after_index, fn, args) \
            if index_first else functools.partial(fn, *args)
        if self.inline:
            return self._guarded(doing, call, ())
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._guarded, doing, call, ())

    def _after_index(self, fn: Callable[..., T], args: tuple[object, ...]) -> T:
        if self._unindexed:
            self._index()
        return fn(*args)

    async def _read(self, doing: str, fn: Callable[..., T], *args: object) -> T:
        """``fn(side connection, *args)`` in the side thread, errors mapped."""
        await self.flush()  # a row stored is a row found
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._side_executor, self._guarded, doing,
                                          self._on_side, (fn, args), self._read_failures)

    def _guarded(self, doing: str, fn: Callable[..., T], args: tuple[object, ...],
                 failures: FailureLog | None = None) -> T:
        failures = failures or self._write_failures
        try:
            with spool_errors(self.path, doing):
                result = fn(*args)
        except SpoolError as exc:
            failures.failed(exc)
            raise
        failures.succeeded()
        return result

    def _on_side(self, fn: Callable[..., T], args: tuple[object, ...]) -> T:
        if self._side is None:
            if self._conn is None:
                raise SpoolError("spool is not open")
            self._side = connect(self.path)
        return fn(self._side, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SpoolError("spool is not open")
        return self._conn

    # -- the writer -----------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            self._writing = False
            first = await self._queue.get()
            self._writing = True
            # Let frames that arrived with this one reach the queue: one commit for all.
            # After a batch of one (a lone sender, waiting for each ACK) one turn is enough:
            # the others would only delay its ACK.
            turns = self.gather_yields if self._last_batch > 1 else min(self.gather_yields, 1)
            for _ in range(turns):
                await asyncio.sleep(0)
            batch = [first]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._last_batch = len(batch)
            try:
                outcomes = await self._run("commit", self._store_batch,
                                           [row for row, _ in batch], index_first=False)
            except Exception as exc:  # noqa: BLE001 - every waiter must hear about it
                err = exc if isinstance(exc, SpoolError) else SpoolError(
                    f"spool commit failed: {exc}")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                    self._queue.task_done()
                continue
            for (_, fut), outcome in zip(batch, outcomes, strict=True):
                if not fut.done():
                    fut.set_result(outcome)
            self._after_commit()
            for _ in batch:
                self._queue.task_done()

    def _after_commit(self) -> None:
        """After the ACKs are on their way: index now if due (in a task, so the ACKs go
        first; the next commit indexes first anyway), else soon; without a journal the
        rows are readable already."""
        if self._journaled is not None and self._journaled.index_due():
            self._index_later()
        elif self._unindexed:
            self._index_soon()
        else:
            self._indexed()

    def _index_soon(self) -> None:
        """Index the journaled rows ``INDEX_DELAY_S`` from now, unless something does first."""
        if self._index_timer is None and self._loop is not None:
            self._index_timer = self._loop.call_later(INDEX_DELAY_S, self._index_later)

    def _index_later(self) -> None:
        if self._index_timer is not None:  # called before its time: one insert, not two
            self._index_timer.cancel()
            self._index_timer = None
        if self._unindexed and (self._index_task is None or self._index_task.done()):
            self._index_task = asyncio.ensure_future(self._flush_quietly())

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except SpoolError:
            pass  # logged by _guarded; the next batch retries it first, and is refused

    def _indexed(self) -> None:
        for callback in self._on_indexed:
            callback()

    def _index(self) -> None:
        """Insert the journaled rows into SQLite (JournaledWrites.index); tell readers."""
        if self._journaled is None or not self._journaled.unindexed:
            return
        if self._journaled.index(self._db()) and self._loop is not None:
            self._loop.call_soon_threadsafe(self._prepare_spare)
        # _index may run on the writer thread (inline=False): callbacks belong to the loop.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._indexed)

    def _settle(self, change: Callable[..., int], *args: object) -> None:
        """Run a write that settles pending rows; the tally drops by the rows it changed."""
        # On the writer's thread (or inline), like the increments in _store_batch.
        self._pending_rows -= change(self._db(), *args)

    def _store_batch(self, rows: list[Accepted | Rejected]) -> list[StoreOutcome]:
        if self._journaled is None:
            outcomes = writes.store_batch(self._db(), rows, self.sealer)
        else:
            if self._journaled.index_due():
                self._index()  # raises while SQLite fails: the batch is refused (AE)
            outcomes = self._journaled.store_batch(self._db(), rows)
        self.commits += 1
        self.rows_committed += len(rows)
        self._pending_rows += sum(o.status in ("stored", "conflict") for o in outcomes)
        return outcomes

    def _open_journal(self) -> None:
        assert self._journaled is not None
        self._journaled.open(self._db())
        self._pending_rows = queries.count_pending(self._db())

    def _prepare_spare(self) -> None:
        """Zero-fill a spare segment on a thread of its own: the next rotation renames it."""
        if self.journal is None or self._loop is None or (
                self._spare is not None and not self._spare.done()):
            return
        self._spare = asyncio.ensure_future(self._loop.run_in_executor(
            None, self._guarded, "prepare a journal segment", self.journal.prepare_spare, ()))

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolError(f"{self.path}: SQLite refused WAL mode (got {mode})")
            schema.migrate(conn, name=str(self.path))
            self.sealer.check(conn, str(self.path))
            self._pending_rows = queries.count_pending(conn)
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the Checkpointer's job instead
        except BaseException:
            conn.close()
            raise
        self._conn = conn

