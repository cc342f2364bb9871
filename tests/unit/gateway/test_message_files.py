"""``hl7gw send`` reads message files the way ``hl7gw map`` does (one splitter)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.mllp.client import read_message_files
from gateway.prepare import split_file
from tests.support.messages import gagne_variants


@pytest.mark.parametrize("name", sorted(gagne_variants()))
def test_send_splits_a_file_as_map_does(tmp_path: Path, name: str) -> None:
    raw = gagne_variants()[name]
    path = tmp_path / f"{name}.hl7"
    path.write_bytes(raw + raw if not name.startswith("utf16") else raw)
    assert [m for _, m in read_message_files([path])] == split_file(path.read_bytes())


@pytest.mark.parametrize("name", ["utf16-bom", "utf16be-declared"])
def test_a_utf16_file_is_sent_whole(tmp_path: Path, name: str) -> None:
    # Before, `hl7gw send` split UTF-16 bytes at every 0x0D/0x0A byte and at "MSH" in
    # ASCII, cutting code units apart: the gateway got fragments and refused them.
    raw = gagne_variants()[name]
    path = tmp_path / "message.hl7"
    path.write_bytes(raw)
    assert read_message_files([path]) == [(path, raw)]
