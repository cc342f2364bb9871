"""The spool's read side for the console, the admin API and ``hl7gw replay``: filters,
bodies, and replays that go out again under a new event id."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.spool import (
    Accepted,
    MessageFilter,
    PublishedMark,
    Rejected,
    Spool,
    StoredBody,
    queries,
    writes,
)


def row(control_id: str, *, sender: str = "LAB|HOSP", kind: str = "ORU^R01",
        raw: bytes = b"MSH|raw") -> Accepted:
    return Accepted(listener="lab", peer="10.0.0.1", sender=sender, control_id=control_id,
                    message_type=kind, sha256=control_id, raw=raw, ack=b"ACK " + raw,
                    event_id=f"ev-{control_id}")


async def stored(spool: Spool, *rows: Accepted) -> list[int]:
    return [(await spool.store(r)).row_id for r in rows]


async def publish_all(spool: Spool) -> None:
    await spool.mark_published([PublishedMark(r.id, "t", 0, r.id)
                                for r in await spool.pending()])


async def test_filters_by_sender_type_status_and_control_id(spool: Spool) -> None:
    a, b, c = await stored(spool, row("1"), row("2", sender="LAB|OTHER", kind="ADT^A01"),
                           row("3", sender="RAD|HOSP", kind="ADT^A08"))
    await spool.mark_published([PublishedMark(a, "t", 0, 1)])

    async def ids(**kw: object) -> list[int]:
        return [m.id for m in await spool.find(MessageFilter(**kw))]  # type: ignore[arg-type]

    assert await ids() == [c, b, a]  # newest first
    assert await ids(sender="LAB") == [b, a]  # every facility of an application
    assert await ids(sender="LAB|OTHER") == [b]
    assert await ids(message_type="ADT^*") == [c, b]
    assert await ids(message_type="ORU^R01") == [a]
    assert await ids(status="published") == [a]
    assert await ids(status="pending") == [c, b]
    assert await ids(control_id="2") == [b]
    assert await ids(ids=(a, c)) == [c, a]
    assert [m.id for m in await spool.find(MessageFilter(), limit=1, before_id=c)] == [b]


async def test_time_window_uses_the_receive_time(tmp_path: Path, spool: Spool) -> None:
    a, b = await stored(spool, row("1"), row("2"))
    await spool.flush()  # journaled rows into SQLite, for the other connection below
    conn = sqlite3.connect(tmp_path / "spool.db")
    conn.execute("UPDATE messages SET received_at = 1000 WHERE id = ?", (a,))
    conn.execute("UPDATE messages SET received_at = 2000 WHERE id = ?", (b,))
    conn.commit()
    conn.close()
    got = await spool.find(MessageFilter(since=1500))
    assert [m.id for m in got] == [b]
    assert [m.id for m in await spool.find(MessageFilter(until=1500))] == [a]


async def test_metadata_has_no_body_and_the_body_is_separate(spool: Spool) -> None:
    (a,) = await stored(spool, row("1", raw=b"MSH|secret"))
    info = (await spool.find(MessageFilter(ids=(a,))))[0]
    assert info.size == len(b"MSH|secret") and info.status == "pending" and info.replays == 0
    assert b"secret" not in repr(info).encode()
    assert await spool.body(a) == StoredBody(raw=b"MSH|secret", ack=b"ACK MSH|secret")
    assert await spool.body(a + 100) is None


async def test_rejected_rows_are_found_with_their_reason(spool: Spool) -> None:
    out = await spool.store(Rejected(listener="lab", peer="p", sender="LAB|HOSP",
                                     control_id="9", ack_code="AR", err_code="200",
                                     reason="message type ZZZ is not supported",
                                     raw=b"MSH|bad", ack=b"NAK"))
    (found,) = await spool.find_rejected(MessageFilter(sender="LAB"))
    assert (found.id, found.err_code, found.size) == (out.row_id, "200", 7)
    assert await spool.find_rejected(MessageFilter(sender="RAD")) == []
    assert await spool.rejected_body(out.row_id) == StoredBody(raw=b"MSH|bad", ack=b"NAK")


async def test_replay_requeues_settled_rows_under_a_new_event_id(spool: Spool) -> None:
    a, _ = await stored(spool, row("1"), row("2", kind="ADT^A01"))
    await publish_all(spool)
    assert await spool.pending() == []
    assert await spool.replay(MessageFilter(message_type="ORU^*")) == [a]
    (again,) = await spool.pending()
    assert (again.id, again.event_id) == (a, "ev-1-r1")
    assert await spool.depth() == 1
    assert await spool.replay(MessageFilter(ids=(a,))) == []  # already pending: left alone
    await publish_all(spool)
    await spool.replay(MessageFilter(ids=(a,)))
    assert (await spool.pending())[0].event_id == "ev-1-r2"
    info = (await spool.find(MessageFilter(ids=(a,))))[0]
    assert info.replays == 2 and info.status == "pending"


async def test_replay_of_a_failed_row_clears_its_error(spool: Spool) -> None:
    (a,) = await stored(spool, row("1"))
    await spool.mark_failed(a, "RequiredFieldMissing at PID-3: empty")
    assert await spool.replay(MessageFilter(status="failed")) == [a]
    info = (await spool.find(MessageFilter(ids=(a,))))[0]
    assert info.status == "pending" and info.last_error is None


async def test_console_queries_run_off_the_event_loop_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search through a big spool takes most of a second: it must not hold up ACKs."""
    import threading
    from collections.abc import Callable
    from typing import Any

    seen: list[str] = []

    def watched(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            seen.append(threading.current_thread().name)
            return fn(*args)
        return run

    for module, name in ((queries, "find"), (queries, "counts"), (writes, "replay")):
        monkeypatch.setattr(module, name, watched(getattr(module, name)))
    spool = Spool(tmp_path / "spool.db")
    await spool.start()
    try:
        (a,) = await stored(spool, row("1"))
        await publish_all(spool)
        await spool.find(MessageFilter())
        await spool.counts()
        assert await spool.replay(MessageFilter(ids=(a,))) == [a]
        assert spool.pending_rows == 1  # the writer's tally follows a replay
    finally:
        await spool.stop()
    assert len(seen) == 3
    assert all(name.startswith("spool-read") for name in seen), seen


async def test_counts_by_status(spool: Spool) -> None:
    a, b, _ = await stored(spool, row("1"), row("2"), row("3"))
    await spool.store(Accepted(listener="lab", peer="p", sender="LAB|HOSP", control_id="3",
                               message_type="ORU^R01", sha256="other", raw=b"MSH|x", ack=b"A",
                               event_id="ev-3b"))  # same id, other bytes: a conflict
    await spool.mark_published([PublishedMark(a, "t", 0, 1)])
    await spool.mark_failed(b, "mapping failed")
    assert await spool.counts() == {"pending": 2, "failed": 1, "published": 1, "conflict": 1,
                                    "rejected": 0}
