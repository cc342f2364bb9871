"""Traffic read from the spool for the Interfaces page and the dashboard's history.

Counts come from the spool's rows, so they survive a restart, and they are read on a
connection of their own in a worker thread (:func:`read_stats`), never on the event loop.
Every query is a ``received_at >= ?`` range, served by the spool's ``received_at``
indexes (spool migration 6), so the cost follows the traffic in the window, not the size
of the spool. Only clear columns are read (listener, peer, sender, type, times, ACK
code): nothing here needs the keyring, and no message content leaves the spool.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

HOUR_S = 3600.0
DAY_S = 86400.0
T = TypeVar("T")
# table -> (the column counted by, what its rows are)
_TABLES = {"messages": ("message_type", "accepted"), "rejected": ("ack_code", "refused")}
_Key = tuple[str, str, str, str]  # (listener, sender, accepted|refused, type or ACK code)


def prime_sql(table: str) -> str:
    """Per sender, kind and minute in one table since a time, up to a row id (with the
    peer of each group's latest row: SQLite takes bare columns from the max() row).

    ``+id`` keeps the planner off the primary key: an ``id <=`` range would read the
    whole table, the ``received_at`` index reads only the day.
    """
    column = _TABLES[table][0]
    return (f"SELECT listener, sender, {column}, CAST(received_at / 60 AS INTEGER),"
            f" count(*), max(received_at), peer FROM {table}"
            " WHERE received_at >= ? AND +id <= ? GROUP BY 1, 2, 3, 4")


@dataclass
class SenderTraffic:
    """One sender on one listener over the last 24 h (``*_1h``: the last hour of it).

    Windows are counted to the minute: "the last hour" is every minute that overlaps it.
    """

    listener: str
    sender: str  # MSH-3|MSH-4 as the spool's ``sender`` column holds it
    accepted_1h: int = 0
    accepted_24h: int = 0
    refused_1h: dict[str, int] = field(default_factory=dict)  # by ACK code (AE, AR)
    refused_24h: dict[str, int] = field(default_factory=dict)
    types_1h: dict[str, int] = field(default_factory=dict)  # accepted, by MSH-9
    types_24h: dict[str, int] = field(default_factory=dict)
    first_at: float | None = None  # the start of the first minute with a message in 24 h
    last_at: float | None = None
    last_peer: str | None = None  # host:port of the connection the last message came on

    @property
    def total_24h(self) -> int:
        """Messages answered in 24 h, accepted or refused."""
        return self.accepted_24h + sum(self.refused_24h.values())


class TrafficTally:
    """Per-minute counts per sender over the last 24 h, kept up to date by row id.

    The first :meth:`update` reads the day's rows grouped by minute (a ``received_at``
    range: 1-2 s for 500,000 rows); later ones read only rows with an id above the last
    one seen (a primary-key range: the rows since the previous update), so a page
    reloaded all day costs what arrived in between. Rows a journal replays after a crash
    get new ids and are counted like any other. Not thread-safe: one update at a time.
    """

    def __init__(self) -> None:
        self._counts: dict[_Key, Counter[int]] = {}
        self._last: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._after: dict[str, int] | None = None  # table -> last id counted; None: unread
        self._expired_upto = 0  # the minute before which counts were dropped

    def update(self, conn: sqlite3.Connection, now: float) -> list[SenderTraffic]:
        """Count the rows new since the last update; the traffic per sender now."""
        tops = {t: int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0])
                for t in _TABLES}
        if self._after is None or any(tops[t] < self._after[t] for t in _TABLES):
            self._prime(conn, now, tops)  # first time, or the spool file was replaced
        else:
            self._follow(conn, tops)
        self._expire(now)
        return self._traffic(now)

    def _prime(self, conn: sqlite3.Connection, now: float, tops: dict[str, int]) -> None:
        self._counts.clear()
        self._last.clear()
        for table, (_, label) in _TABLES.items():
            for listener, sender, kind, minute, n, last, peer in conn.execute(
                    prime_sql(table), (now - DAY_S, tops[table])):
                self._add(listener, sender, label, kind, int(minute), n, last, peer)
        self._after = dict(tops)

    def _follow(self, conn: sqlite3.Connection, tops: dict[str, int]) -> None:
        assert self._after is not None
        for table, (column, label) in _TABLES.items():
            for listener, sender, kind, at, peer in conn.execute(
                    f"SELECT listener, sender, {column}, received_at, peer FROM {table}"
                    " WHERE id > ? AND id <= ? ORDER BY id", (self._after[table],
                                                              tops[table])):
                self._add(listener, sender, label, kind, int(at // 60), 1, at, peer)
            self._after[table] = tops[table]

    def _add(self, listener: str, sender: str, label: str, kind: str, minute: int, n: int,
             at: float, peer: str | None) -> None:
        self._counts.setdefault((listener, sender, label, kind), Counter())[minute] += n
        seen = self._last.get((listener, sender))
        if seen is None or at >= seen[0]:
            self._last[listener, sender] = (at, peer)

    def _expire(self, now: float) -> None:
        """Drop minutes that left the 24 h window (once a minute)."""
        cutoff = int((now - DAY_S) // 60)
        if cutoff <= self._expired_upto:
            return
        self._expired_upto = cutoff
        for key, minutes in list(self._counts.items()):
            for minute in [m for m in minutes if m < cutoff]:
                del minutes[minute]
            if not minutes:
                del self._counts[key]
        live = {(k[0], k[1]) for k in self._counts}
        for who in [w for w in self._last if w not in live]:
            del self._last[who]

    def _traffic(self, now: float) -> list[SenderTraffic]:
        hour, day = int((now - HOUR_S) // 60), int((now - DAY_S) // 60)
        found: dict[tuple[str, str], SenderTraffic] = {}
        for (listener, sender, label, kind), minutes in self._counts.items():
            in_day = {m: n for m, n in minutes.items() if m >= day}
            if not in_day:
                continue
            t = found.setdefault((listener, sender), SenderTraffic(listener, sender))
            n24, n1 = sum(in_day.values()), sum(n for m, n in in_day.items() if m >= hour)
            if label == "accepted":
                t.accepted_24h += n24
                t.accepted_1h += n1
                t.types_24h[kind] = n24
                if n1:
                    t.types_1h[kind] = n1
            else:
                t.refused_24h[kind] = n24
                if n1:
                    t.refused_1h[kind] = n1
            first = min(in_day) * 60.0
            t.first_at = first if t.first_at is None else min(t.first_at, first)
        for (listener, sender), t in found.items():
            t.last_at, t.last_peer = self._last[listener, sender]
        return sorted(found.values(), key=lambda t: (t.listener, t.sender))


@dataclass(frozen=True)
class MinuteTraffic:
    """Messages per minute over a window, oldest first, and the pending depth estimate."""

    start: float  # the first minute's start (Unix seconds, a multiple of 60)
    received: list[int]  # accepted messages, by received_at
    published: list[int]  # by published_at, of rows received in the lookback
    rejected: list[int]
    depth: list[int]  # pending rows at each minute's end (estimated, see per_minute)


def per_minute(conn: sqlite3.Connection, now: float, minutes: int = 60,
               publish_lookback_s: float = 6 * HOUR_S) -> MinuteTraffic:
    """Traffic per minute for the last ``minutes``, from the spool alone.

    Published counts take rows received within ``publish_lookback_s`` (an index range;
    ``published_at`` has no index): a row held back longer than that, by a long Kafka
    outage, is not counted when it finally goes out. The pending depth is counted now
    and walked back minute by minute (depth before = depth after - received + published),
    so it is an estimate: replays and failed rows are not in it.
    """
    end = (int(now) // 60 + 1) * 60
    start = end - minutes * 60

    def buckets(sql: str, *args: float) -> list[int]:
        out = [0] * minutes
        for minute, n in conn.execute(sql, args):
            index = int(minute) - start // 60
            if 0 <= index < minutes:
                out[index] = int(n)
        return out

    received = buckets("SELECT CAST(received_at / 60 AS INTEGER) AS m, count(*)"
                       " FROM messages WHERE received_at >= ? GROUP BY m", start)
    rejected = buckets("SELECT CAST(received_at / 60 AS INTEGER) AS m, count(*)"
                       " FROM rejected WHERE received_at >= ? GROUP BY m", start)
    published = buckets("SELECT CAST(published_at / 60 AS INTEGER) AS m, count(*)"
                        " FROM messages WHERE received_at >= ? AND published_at >= ?"
                        " GROUP BY m", start - publish_lookback_s, start)
    pending = int(conn.execute("SELECT count(*) FROM messages WHERE status = 'pending'")
                  .fetchone()[0])
    depth = [0] * minutes
    for i in range(minutes - 1, -1, -1):
        depth[i] = pending
        pending = max(0, pending - received[i] + published[i])
    return MinuteTraffic(float(start), received, published, rejected, depth)


def _connect(path: Path) -> sqlite3.Connection:
    """A read-only connection of our own (the spool's writer and side threads stay free)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


async def read_stats(path: Path, query: Callable[[sqlite3.Connection, float], T],
                     now: float | None = None) -> T:
    """``query(connection, now)`` in a worker thread on a fresh read-only connection."""
    moment = time.time() if now is None else now

    def run() -> T:
        conn = _connect(path)
        try:
            return query(conn, moment)
        finally:
            conn.close()

    return await asyncio.to_thread(run)
