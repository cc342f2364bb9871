"""The spool's transaction helper and error boundary, on a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import SpoolError
from gateway.spool.tx import spool_errors, transaction


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    c.execute("PRAGMA foreign_keys = ON")
    c.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    c.execute("CREATE TABLE child (parent INTEGER REFERENCES parent (id)"
              " DEFERRABLE INITIALLY DEFERRED)")
    yield c
    c.close()


def test_commits_what_ran_inside(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        assert conn.in_transaction
        conn.execute("INSERT INTO parent VALUES (1)")
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM parent").fetchone()[0] == 1


def test_rolls_back_when_the_block_raises(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="not sqlite"), transaction(conn):
        conn.execute("INSERT INTO parent VALUES (1)")
        raise ValueError("not sqlite")
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM parent").fetchone()[0] == 0


def test_rolls_back_when_commit_itself_fails(conn: sqlite3.Connection) -> None:
    # A deferred foreign key is checked at COMMIT, which fails and leaves the
    # transaction open: the helper must close it, or the next BEGIN would fail.
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"), transaction(conn):
        conn.execute("INSERT INTO child VALUES (42)")
    assert not conn.in_transaction
    with transaction(conn):
        conn.execute("INSERT INTO parent VALUES (42)")
        conn.execute("INSERT INTO child VALUES (42)")
    assert conn.execute("SELECT count(*) FROM child").fetchone()[0] == 1


def test_a_transaction_left_open_elsewhere_is_ended_first(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    conn.execute("INSERT INTO parent VALUES (7)")
    with transaction(conn):
        conn.execute("INSERT INTO parent VALUES (8)")
    assert [r[0] for r in conn.execute("SELECT id FROM parent")] == [8]


def test_sqlite_errors_become_spool_errors_naming_file_step_and_remedy(tmp_path: Path) -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13
    full.sqlite_errorname = "SQLITE_FULL"
    with pytest.raises(SpoolError) as caught, spool_errors(tmp_path / "s.db", "commit"):
        raise full
    text = str(caught.value)
    assert text.startswith(f"spool {tmp_path / 's.db'}: commit failed (SQLITE_FULL: ")
    assert "free space" in text and "ERR 207" in text
    assert caught.value.__cause__ is full


def test_other_errors_pass_through(tmp_path: Path) -> None:
    with pytest.raises(KeyError), spool_errors(tmp_path / "s.db", "commit"):
        raise KeyError("not a database problem")
