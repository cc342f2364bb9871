"""The spool's outbound queue on a real SQLite file: idempotent queueing, order, replay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.spool import Spool
from gateway.spool.outbound import OutboundItem, OutboundRow

ITEM = OutboundItem(destination="ehr", event_id="e1.result", causation_id="e1",
                    message_type="ORU^R01", control_id="CTRL1", patient_key="p1",
                    resource=b'{"resourceType":"Bundle"}', message=b"MSH|^~\\&|\r")


async def next_queued(spool: Spool, destination: str) -> OutboundRow | None:
    """The oldest row queued for ``destination``, as its sender would take it."""
    rows = await spool.queued_outbound(destination, 1)
    return rows[0] if rows else None



@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    s = Spool(tmp_path / "spool.db")
    await s.start()
    yield s
    await s.stop()


async def test_a_result_is_queued_once_per_destination(spool: Spool) -> None:
    assert await spool.queue_outbound([ITEM]) == 1
    assert await spool.queue_outbound([ITEM]) == 0  # consumed again after a crash
    other = replace(ITEM, destination="lab")
    assert await spool.queue_outbound([other, ITEM]) == 1
    depths = await spool.outbound_depths()
    assert (depths["ehr"].queued, depths["lab"].queued) == (1, 1)


async def test_the_queue_is_taken_in_order_per_destination(spool: Spool) -> None:
    items = [replace(ITEM, event_id=f"e{n}", control_id=f"C{n}") for n in range(3)]
    await spool.queue_outbound(items)
    await spool.queue_outbound([replace(ITEM, destination="lab", event_id="x")])
    row = await next_queued(spool, "ehr")
    assert row is not None and row.control_id == "C0"
    await spool.settle_outbound(row.id, status="queued", attempts=1, error="AE")
    again = await next_queued(spool, "ehr")
    assert again is not None and (again.id, again.attempts, again.last_error) == (
        row.id, 1, "AE")  # a retried message keeps its place at the head
    await spool.settle_outbound(row.id, status="sent", attempts=2, ack_code="AA",
                                ack=b"MSA|AA|C0")
    nxt = await next_queued(spool, "ehr")
    assert nxt is not None and nxt.control_id == "C1"
    sent = await spool.get_outbound(row.id)
    assert sent is not None and sent.status == "sent" and sent.sent_at is not None
    assert sent.ack == b"MSA|AA|C0" and sent.ack_code == "AA"


async def test_a_render_failure_is_kept_as_failed_and_replay_puts_it_at_the_back(
        spool: Spool) -> None:
    await spool.queue_outbound([replace(ITEM, event_id="bad", message=b"",
                                        error="no Patient in the result"),
                                replace(ITEM, event_id="good", control_id="G")])
    [bad, good] = sorted(await spool.find_outbound(destination="ehr"),
                         key=lambda r: r.event_id)
    assert bad.status == "failed" and bad.last_error == "no Patient in the result"
    assert (await next_queued(spool, "ehr")).event_id == "good"  # type: ignore[union-attr]
    [new_id] = await spool.requeue_outbound([bad.id], {bad.id: b"MSH|fixed\r"})
    assert new_id > good.id
    row = await spool.get_outbound(new_id)
    assert row is not None and (row.status, row.replays, row.message, row.control_id) == (
        "queued", 1, b"MSH|fixed\r", bad.control_id)
    assert await spool.get_outbound(bad.id) is None
    assert await spool.requeue_outbound([good.id]) == []  # queued rows are not replayed
    assert await spool.outbound_resource(new_id) == ITEM.resource


async def test_sent_rows_are_pruned_after_their_retention(spool: Spool) -> None:
    await spool.queue_outbound([ITEM, replace(ITEM, event_id="e2")])
    row = await next_queued(spool, "ehr")
    assert row is not None
    await spool.settle_outbound(row.id, status="sent", attempts=1, ack_code="AA", ack=b"x")
    assert await spool.prune_outbound(sent_before=0) == 0
    assert await spool.prune_outbound(sent_before=row.updated_at + 3600) == 1
    assert [r.event_id for r in await spool.find_outbound()] == ["e2"]  # queued one kept


async def test_a_replayed_row_never_takes_an_old_id(spool: Spool) -> None:
    await spool.queue_outbound([ITEM])
    row = await next_queued(spool, "ehr")
    assert row is not None
    await spool.settle_outbound(row.id, status="failed", attempts=1, error="AR")
    [new_id] = await spool.requeue_outbound([row.id])
    assert new_id != row.id  # audit entries name the old id; it must not come back
