"""The audit log: one durable JSON line per action, never a message body."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gateway.audit import AuditError, AuditLog


async def test_entries_are_json_lines_in_a_created_folder(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "deep" / "er" / "audit.jsonl")
    await log.record(user="olga", role="operator", action="view_body", peer="10.0.0.5:4242",
                     targets=[7])
    await log.record(user="olga", role="operator", action="replay", peer="10.0.0.5:4242",
                     targets=[7, 8], filter={"message_type": "ADT^*"})
    lines = log.path.read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(x) for x in lines)
    assert first["user"] == "olga" and first["role"] == "operator"
    assert first["action"] == "view_body" and first["targets"] == [7]
    assert first["peer"] == "10.0.0.5:4242"
    assert first["time"].endswith("Z") and first["time"][:2] == "20"
    assert second["filter"] == {"message_type": "ADT^*"}
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600


async def test_records_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    log = AuditLog(tmp_path / "audit.jsonl")
    await log.record(user="u", role="viewer", action="login", peer="p")
    assert len(synced) == 1


async def test_latest_is_newest_first_and_skips_broken_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(5):
        await log.record(user=f"u{i}", role="viewer", action="login", peer="p")
    with log.path.open("a") as fh:
        fh.write("not json\n")
    assert [e["user"] for e in log.latest(3)] == ["u4", "u3", "u2"]
    assert AuditLog(tmp_path / "missing.jsonl").latest() == []


async def test_an_unwritable_log_raises_so_the_action_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = AuditLog(blocker / "audit.jsonl")  # parent is a file: cannot be created
    with pytest.raises(AuditError, match="cannot write the audit log"):
        await log.record(user="u", role="operator", action="view_body", peer="p", targets=[1])
