"""The durable spool: every accepted message is committed here before it is ACKed.

One SQLite file (WAL, ``synchronous=FULL``) with two tables: ``messages`` (accepted, with
their publish state) and ``rejected`` (refused, with the NAK sent). The package:

- :mod:`~gateway.spool.store`: :class:`Spool`, its connections, threads and the
  group-commit writer that intake's durable ACK waits for;
- :mod:`~gateway.spool.tx`: the one transaction helper every write runs in, and the one
  boundary that turns ``sqlite3.Error`` into ``SpoolError`` with what to do about it;
- :mod:`~gateway.spool.writes` / :mod:`~gateway.spool.queries`: the SQL, as functions
  over a connection;
- :mod:`~gateway.spool.schema`: the tables and their ordered migrations
  (``PRAGMA user_version``);
- :mod:`~gateway.spool.records`: the named records that go in and come out.
"""

from __future__ import annotations

from gateway.spool.records import (
    Accepted,
    MessageFilter,
    MessageInfo,
    PendingRow,
    PublishedMark,
    Rejected,
    RejectedInfo,
    StoredBody,
    StoreOutcome,
)
from gateway.spool.store import Spool
from gateway.spool.writes import REPLAY_CHUNK

__all__ = [
    "REPLAY_CHUNK",
    "Accepted",
    "MessageFilter",
    "MessageInfo",
    "PendingRow",
    "PublishedMark",
    "Rejected",
    "RejectedInfo",
    "Spool",
    "StoreOutcome",
    "StoredBody",
]
