"""The replay service both the console and ``hl7gw replay`` use: queue, then one audit line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import AuditError, AuditLog
from gateway.errors import SpoolError
from gateway.replay import Actor, ReplayService, filter_record
from gateway.spool import MessageFilter, Spool
from tests.unit.gateway.console_app import fill, replays_of

OLGA = Actor("olga", "operator", "10.1.2.3:5000")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def test_a_replay_queues_published_and_failed_rows_and_records_them(
        spool: Spool, tmp_path: Path) -> None:
    await fill(spool)
    woken: list[int] = []
    service = ReplayService(spool, AuditLog(tmp_path / "audit.jsonl"),
                            wake=lambda: woken.append(1))
    flt = MessageFilter(message_type="ADT^*")
    queued = await service.replay(flt, OLGA)
    assert len(queued) == 2 and woken == [1]
    assert await replays_of(spool) == {"C-0": 1, "C-1": 1, "C-2": 0}
    (entry,) = lines(tmp_path / "audit.jsonl")
    assert {k: v for k, v in entry.items() if k != "time"} == {
        "user": "olga", "role": "operator", "action": "replay", "peer": "10.1.2.3:5000",
        "targets": queued, "filter": {"message_type": "ADT^*"}}


async def test_only_the_confirmed_ids_are_queued(spool: Spool, tmp_path: Path) -> None:
    await fill(spool)
    service = ReplayService(spool, AuditLog(tmp_path / "audit.jsonl"))
    matching = await service.matching(MessageFilter(sender="EPICADT"))
    assert len(matching) == 3
    first = min(m.id for m in matching)
    assert await service.replay(MessageFilter(sender="EPICADT"), OLGA, only=[first]) == [first]
    assert lines(tmp_path / "audit.jsonl")[0]["filter"] == {"sender": "EPICADT"}


async def test_nothing_is_queued_when_the_audit_log_cannot_be_written(
        spool: Spool, tmp_path: Path) -> None:
    await fill(spool)
    (tmp_path / "file").write_text("")
    service = ReplayService(spool, AuditLog(tmp_path / "file" / "audit.jsonl"))
    with pytest.raises(AuditError):
        await service.replay(MessageFilter(message_type="ADT^*"), OLGA)
    assert await replays_of(spool) == {"C-0": 0, "C-1": 0, "C-2": 0}


async def test_a_spool_error_part_way_is_still_recorded(spool: Spool, tmp_path: Path) -> None:
    class Failing(Spool):
        async def replay(self, where: MessageFilter) -> list[int]:
            raise SpoolError("disk I/O error")

    service = ReplayService(Failing(tmp_path / "other.db"), AuditLog(tmp_path / "a.jsonl"))
    with pytest.raises(SpoolError):
        await service.replay(MessageFilter(ids=(1,)), Actor.os_user())
    (entry,) = lines(tmp_path / "a.jsonl")
    assert entry["targets"] == [] and entry["outcome"] == "stopped after 0 queued: SpoolError"
    assert entry["role"] == "cli" and entry["user"]


def test_the_audit_filter_names_only_what_was_set() -> None:
    assert filter_record(MessageFilter(ids=(3,), status="failed", since=0.0)) == {
        "ids": [3], "status": "failed", "since": 0.0}
