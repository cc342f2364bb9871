"""Fixtures for the gateway's unit tests: a real SQLite spool in a temporary folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.spool import Spool


@pytest.fixture(params=["journal", "sqlite"])
async def spool(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Spool]:
    """A started spool on a fresh file (``tmp_path / "spool.db"``), stopped afterwards;
    once with the intake journal in front of SQLite (as the gateway runs it), once
    without: both must keep every promise the tests check."""
    journal = tmp_path / "spool.db.journal" if request.param == "journal" else None
    s = Spool(tmp_path / "spool.db", journal_dir=journal, segment_bytes=1 << 20)
    await s.start()
    yield s
    await s.stop()
