"""Finding messages in the spool: by indexed terms, control id or a scan of the bodies.

Plain functions over a connection, run on the spool's side thread (``Spool._read``) so a
search through half a million rows never holds up intake's ACKs; the indexer that fills
``search_terms`` lives in :mod:`gateway.spool.search_index`. What is stored is described
in :mod:`gateway.spool.search_terms`: keyed hashes only.

A search is a :class:`SearchQuery`: a kind and its text, plus the listing's filter
(sender, type, status, time window). Term kinds and control ids are answered from
indexes; ``text`` reads bodies newest first within the window, at most ``scan_cap`` rows
per call, and says how many it read of how many there were, so a page can show
"scanned N of M" rather than pretend it looked everywhere.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final, Literal, get_args

from gateway.spool.records import MessageFilter, MessageInfo, RejectedInfo
from gateway.spool.sealing import Sealer
from gateway.spool.search_terms import Hasher, TermKind, message_terms, query_terms
from gateway.spool.tx import transaction

SearchKind = Literal["identifier", "name", "control", "order", "text"]
SEARCH_KINDS: Final[tuple[SearchKind, ...]] = get_args(SearchKind)
# Kinds whose query is patient data: they need the operator role and are audited.
PHI_KINDS: Final = frozenset({"identifier", "name", "order", "text"})
SCAN_CAP: Final = 20_000
INDEX_CHUNK: Final = 64
_KEY_PLACE: Final = "search_state:1:key"


@dataclass(frozen=True)
class SearchQuery:
    """What to look for (``kind``, ``text``) within a listing filter."""

    kind: SearchKind
    text: str
    where: MessageFilter = field(default_factory=MessageFilter)


@dataclass(frozen=True)
class SearchPage:
    """Rows found (newest first) and, for a text scan, how far it read."""

    rows: list[MessageInfo]
    scanned: int | None = None  # text: rows read in this call
    in_window: int | None = None  # text: rows matching the filter, below ``before``
    next_before: int | None = None  # where to go on: the last row read (text) or returned


# -- the key and the bookmark -------------------------------------------------------------

def search_key(conn: sqlite3.Connection, sealer: Sealer) -> bytes:
    """The spool's search key; sealed in place with the keyring's current key when
    encryption is on (sealed again after a key rotation: read on every start)."""
    row = conn.execute("SELECT key FROM search_state WHERE id = 1").fetchone()
    stored = bytes(row["key"])
    key = sealer.open(stored, _KEY_PLACE)
    if sealer.needs_rewrap(stored):  # clear, or under an older key: seal it now
        with transaction(conn):
            conn.execute("UPDATE search_state SET key = ? WHERE id = 1",
                         (sealer.seal(key, _KEY_PLACE),))
    return key


def indexed_upto(conn: sqlite3.Connection) -> int:
    """The last message id the indexer has done."""
    return int(conn.execute("SELECT indexed_upto FROM search_state WHERE id = 1")
               .fetchone()[0])


def newest_id(conn: sqlite3.Connection) -> int:
    """The newest message id (0 for an empty spool)."""
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0])


# -- indexing -----------------------------------------------------------------------------

def read_chunk(conn: sqlite3.Connection, sealer: Sealer, key: bytes, after: int,
               limit: int = INDEX_CHUNK) -> tuple[int, list[tuple[bytes, int]]]:
    """Terms for the messages after ``after`` (up to ``limit``): the last id read and the
    (term, message id) pairs. Reads only: the caller writes with :func:`write_terms`."""
    rows = conn.execute("SELECT id, raw, charset FROM messages WHERE id > ? ORDER BY id"
                        " LIMIT ?", (after, limit)).fetchall()
    pairs: list[tuple[bytes, int]] = []
    hasher = Hasher(key)
    for row in rows:
        raw = sealer.open(bytes(row["raw"]), f"messages:{row['id']}:raw")
        pairs.extend((t, int(row["id"])) for t in message_terms(hasher, raw, row["charset"]))
    return (int(rows[-1]["id"]) if rows else after), pairs


def write_terms(conn: sqlite3.Connection, upto: int, pairs: Iterable[tuple[bytes, int]]
                ) -> None:
    """Store terms and move the bookmark, in one transaction, without an fsync of its own:
    the index can be rebuilt, so a power cut may lose the last chunks (terms and bookmark
    together, never one without the other: the indexer redoes them). The next durable
    commit, intake's, syncs them along (the WAL is synced in order)."""
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        with transaction(conn):
            conn.executemany("INSERT OR IGNORE INTO search_terms VALUES (?, ?)", pairs)
            conn.execute("UPDATE search_state SET indexed_upto = ? WHERE id = 1"
                         " AND indexed_upto < ?", (upto, upto))
    finally:
        conn.execute("PRAGMA synchronous=FULL")


# -- searching ----------------------------------------------------------------------------

def _where(query: SearchQuery, key: bytes, before_id: int | None
           ) -> tuple[str, list[object]] | None:
    """SQL for rows matching ``query`` (not text); None when it can match nothing."""
    where = query.where
    if query.kind == "control":
        where = replace(where, control_id=query.text.strip())
    sql, args = where.where()
    if query.kind in ("identifier", "name", "order"):
        kind: TermKind = query.kind
        terms = query_terms(key, kind, query.text)
        if not terms:
            return None
        for t in terms:
            sql += " AND id IN (SELECT message_id FROM search_terms WHERE term = ?)"
            args.append(t)
    if before_id is not None:
        sql += " AND id < ?"
        args.append(before_id)
    return sql, args


def find(conn: sqlite3.Connection, key: bytes, query: SearchQuery, limit: int,
         before_id: int | None) -> list[MessageInfo]:
    """Indexed kinds (identifier, name, order, control): newest first, below ``before``."""
    found = _where(query, key, before_id)
    if found is None:
        return []
    sql, args = found
    rows = conn.execute(f"SELECT {MessageInfo.COLUMNS} FROM messages WHERE {sql}"
                        " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
    return [MessageInfo.from_row(r) for r in rows]


def ids(conn: sqlite3.Connection, key: bytes, sealer: Sealer, query: SearchQuery,
        cap: int) -> tuple[list[int], bool]:
    """Ids of every row matching (newest first), at most ``cap``; and whether more did.
    A text query reads at most ``SCAN_CAP`` bodies: more unread rows count as "more"."""
    if query.kind == "text":
        page = scan(conn, sealer, query, cap + 1, None)
        more = len(page.rows) > cap or page.next_before is not None
        return [r.id for r in page.rows[:cap]], more
    found = _where(query, key, None)
    if found is None:
        return [], False
    sql, args = found
    got = [int(r[0]) for r in conn.execute(
        f"SELECT id FROM messages WHERE {sql} ORDER BY id DESC LIMIT ?", (*args, cap + 1))]
    return got[:cap], len(got) > cap


def count(conn: sqlite3.Connection, key: bytes, sealer: Sealer, query: SearchQuery) -> int:
    """Rows matching; for text, those found within the first ``SCAN_CAP`` rows read."""
    if query.kind == "text":
        return len(scan(conn, sealer, query, SCAN_CAP, None).rows)
    found = _where(query, key, None)
    if found is None:
        return 0
    sql, args = found
    return int(conn.execute(f"SELECT count(*) FROM messages WHERE {sql}", args)
               .fetchone()[0])


def scan(conn: sqlite3.Connection, sealer: Sealer, query: SearchQuery, limit: int,
         before_id: int | None, scan_cap: int | None = None) -> SearchPage:
    """Free text: bodies read newest first within the filter, case-insensitive substring,
    at most ``scan_cap`` rows; ``next_before`` is set when rows are left unread."""
    needle = query.text.strip().casefold()
    scan_cap = SCAN_CAP if scan_cap is None else scan_cap
    sql, args = query.where.where()
    if before_id is not None:
        sql += " AND id < ?"
        args.append(before_id)
    in_window = int(conn.execute(f"SELECT count(*) FROM messages WHERE {sql}", args)
                    .fetchone()[0])
    # ids first, bodies one by one: with a time window SQLite sorts the window's rows, and
    # sorting ids is cheap where sorting bodies read them all before the first compare
    order = [int(r[0]) for r in conn.execute(
        f"SELECT id FROM messages WHERE {sql} ORDER BY id DESC LIMIT ?", (*args, scan_cap))]
    hits: list[int] = []
    scanned, last = 0, None
    for last in order:
        row = conn.execute("SELECT raw, charset FROM messages WHERE id = ?", (last,)
                           ).fetchone()
        if row is None:  # pruned meanwhile
            continue
        scanned += 1
        raw = sealer.open(bytes(row["raw"]), f"messages:{last}:raw")
        if needle and needle in raw.decode(_codec(row["charset"]), "replace").casefold():
            hits.append(last)
            if len(hits) == limit:
                break
    rows = _infos(conn, hits)
    return SearchPage(rows, scanned=scanned, in_window=in_window,
                      next_before=last if scanned < in_window else None)


def _codec(charset: str) -> str:
    import codecs
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "utf-8"


def _infos(conn: sqlite3.Connection, row_ids: list[int]) -> list[MessageInfo]:
    if not row_ids:
        return []
    marks = ",".join("?" * len(row_ids))
    rows = conn.execute(f"SELECT {MessageInfo.COLUMNS} FROM messages WHERE id IN ({marks})"
                        " ORDER BY id DESC", row_ids).fetchall()
    return [MessageInfo.from_row(r) for r in rows]


# -- refused messages: the sender as the page shows it --------------------------------------

def sender_clause(sender: str) -> tuple[str, list[object]]:
    """SQL matching a sender as people type it from what a page shows: ``APP`` (every
    facility; also an application with components, ``APP^1.2.3^ISO``), ``APP|FAC`` (also
    a facility with components, ``FAC^2.16.840...^ISO``), the full ``APP|FAC^...`` value,
    or ``|FAC`` (that facility from any application)."""
    app, bar, fac = sender.partition("|")
    app_col = "substr(sender, 1, instr(sender, '|') - 1)"
    fac_col = "substr(sender, instr(sender, '|') + 1)"
    parts: list[str] = []
    args: list[object] = []
    if app:
        parts.append(f"({app_col} = ? OR substr({app_col}, 1, ?) = ?)")
        args.extend((app, len(app) + 1, app + "^"))
    if bar and fac:
        parts.append(f"({fac_col} = ? OR substr({fac_col}, 1, ?) = ?)")
        args.extend((fac, len(fac) + 1, fac + "^"))
    return (" AND ".join(parts) or "1"), args


def find_rejected(conn: sqlite3.Connection, where: MessageFilter, limit: int,
                  before_id: int | None) -> list[RejectedInfo]:
    """Refused messages matching ``where`` (ids, control id, times) and its sender as
    :func:`sender_clause` reads it, newest first."""
    sql, args = replace(where, sender=None, message_type=None, status=None).where()
    if where.sender:
        clause, more = sender_clause(where.sender)
        sql += f" AND {clause}"
        args.extend(more)
    if before_id is not None:
        sql += " AND id < ?"
        args.append(before_id)
    rows = conn.execute(f"SELECT {RejectedInfo.COLUMNS} FROM rejected WHERE {sql}"
                        " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
    return [RejectedInfo.from_row(r) for r in rows]


def rejected_senders(conn: sqlite3.Connection, recent: int = 5000) -> list[str]:
    """The senders among the latest ``recent`` refusals, for the filter's suggestions."""
    return [str(r[0]) for r in conn.execute(
        "SELECT DISTINCT sender FROM (SELECT sender FROM rejected ORDER BY id DESC LIMIT ?)"
        " ORDER BY sender LIMIT 200", (recent,))]
