"""Fixtures for the gateway's unit tests: a real SQLite spool in a temporary folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.spool import Spool


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    """A started spool on a fresh file (``tmp_path / "spool.db"``), stopped afterwards."""
    s = Spool(tmp_path / "spool.db")
    await s.start()
    yield s
    await s.stop()
