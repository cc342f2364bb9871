"""``hl7gw replay`` and ``hl7gw keys rewrap`` on a spool sealed at rest: both open it with
the config's keys (replay used to open it keyless and was refused by the start-up check)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main
from gateway.keys.manage import init_keys
from gateway.keys.providers import load_keyring
from gateway.keys.settings import EncryptionSettings
from gateway.spool import Accepted, PublishedMark, Spool


def sealed_spool(tmp_path: Path) -> Path:
    keys = EncryptionSettings(provider="file", key_file=tmp_path / "keys.json")
    init_keys(keys)
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"""\
spool:
  path: {tmp_path / "spool.db"}
encryption:
  provider: file
  key_file: {tmp_path / "keys.json"}
kafka:
  bootstrap_servers: 127.0.0.1:1
  topic: t
console:
  audit_path: {tmp_path / "audit.jsonl"}
""")

    async def fill() -> None:
        spool = Spool(tmp_path / "spool.db", keyring=load_keyring(keys))
        await spool.start()
        out = await spool.store(Accepted("l", "p", "EPIC|HOSP", "C1", "ADT^A01", "sha",
                                         b"MSH|^~\\&|EPIC|HOSP\rPID|1||MRN1", b"MSA|AA|C1",
                                         "ev-1"))
        await spool.mark_published([PublishedMark(out.row_id, "t", 0, 0)])
        await spool.stop()

    asyncio.run(fill())
    return cfg


def test_replay_dry_run_reads_a_sealed_spool(tmp_path: Path) -> None:
    cfg = sealed_spool(tmp_path)
    result = CliRunner().invoke(main, ["replay", "--config", str(cfg), "--all", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "1 message(s) match (1 published)" in result.output


def test_rewrap_on_a_current_spool_seals_nothing(tmp_path: Path) -> None:
    cfg = sealed_spool(tmp_path)
    result = CliRunner().invoke(main, ["keys", "rewrap", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "sealed 0 value(s)" in result.output and "2 were current already" in result.output
