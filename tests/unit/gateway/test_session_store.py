"""Console sessions kept in SQLite: hashed ids, mode 0600, expiry, logout, reopening."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from pathlib import Path

import pytest

from gateway.config import ConsoleSettings
from gateway.console.auth import Principal, Sessions
from gateway.console.session_store import SessionStore, SessionStoreError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    first = Sessions(hours=8, path=path)
    made = first.create(Principal("dr.ada", "operator"), "oidc")
    first.close()
    again = Sessions(hours=8, path=path)
    found = again.get(made.id)
    assert found == made
    assert found is not None and found.method == "oidc" and found.csrf == made.csrf


def test_only_a_hash_of_the_cookie_is_stored_and_the_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "sessions.db"
    sessions = Sessions(hours=8, path=path)
    made = sessions.create(Principal("olga", "operator"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert made.id.encode() not in path.read_bytes()
    with sqlite3.connect(path) as db:
        (stored,) = db.execute("SELECT id_sha256 FROM console_sessions").fetchone()
    assert stored == hashlib.sha256(made.id.encode()).hexdigest()


def test_a_looser_existing_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    store = SessionStore(path)
    assert store.count() == 0
    store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_file_is_made_until_a_session_is_used(tmp_path: Path) -> None:
    path = tmp_path / "var" / "sessions.db"
    sessions = Sessions(hours=8, path=path)
    assert sessions.get(None) is None  # a request without a cookie
    assert not path.exists()
    assert sessions.get("some-cookie") is None
    assert path.exists()


def test_expired_sessions_are_refused_and_pruned(tmp_path: Path) -> None:
    clock = Clock()
    sessions = Sessions(hours=1, clock=clock, path=tmp_path / "s.db")
    old = sessions.create(Principal("a", "viewer"))
    clock.now += 1800
    young = sessions.create(Principal("b", "viewer"))
    clock.now += 1800  # old ends now, young in half an hour
    assert sessions.get(old.id) is None
    assert len(sessions) == 1  # looked up past its end: deleted
    clock.now += 3600
    assert sessions.prune() == 1 and len(sessions) == 0
    assert sessions.get(young.id) is None


def test_logout_deletes_the_row(tmp_path: Path) -> None:
    sessions = Sessions(hours=8, path=tmp_path / "s.db")
    a = sessions.create(Principal("a", "viewer"))
    b = sessions.create(Principal("b", "viewer"))
    sessions.drop(a.id)
    assert sessions.get(a.id) is None and sessions.get(b.id) == b and len(sessions) == 1
    sessions.drop("never-issued")  # no error
    assert len(sessions) == 1


def test_the_default_file_is_next_to_the_audit_log(tmp_path: Path) -> None:
    cfg = ConsoleSettings(audit_path=tmp_path / "logs" / "audit.jsonl")
    assert cfg.session_file == tmp_path / "logs" / "console-sessions.db"
    chosen = ConsoleSettings(sessions_path=tmp_path / "elsewhere.db")
    assert chosen.session_file == tmp_path / "elsewhere.db"


def test_an_unusable_path_says_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SessionStoreError, match=r"console\.sessions_path"):
        SessionStore(blocker / "sessions.db").count()
