"""``hl7gw keys init|rotate|list`` on a temporary config: what they write and print, and
that nothing printed holds key material (except the env provider's value, on stdout only)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import gateway.keys.manage as manage
import gateway.keys.providers as providers
from gateway.cli import main
from gateway.keys.envkeys import parse_env_keys

ARN = "arn:aws:kms:eu-central-1:111122223333:alias/hl7gw-spool"


class FakeKms:
    """Wraps a data key as ``wrapped:<its base64>`` and unwraps it back: enough for the CLI."""

    def __init__(self) -> None:
        self.plain: list[bytes] = []

    def generate_data_key(self, **kw: Any) -> dict[str, Any]:
        plain = os.urandom(32)
        self.plain.append(plain)
        return {"Plaintext": plain, "CiphertextBlob": b"wrapped:" + base64.b64encode(plain)}

    def decrypt(self, **kw: Any) -> dict[str, Any]:
        return {"Plaintext": base64.b64decode(kw["CiphertextBlob"].removeprefix(b"wrapped:"))}


def config(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(f"kafka: {{bootstrap_servers: 127.0.0.1:9092}}\n{section}\n")
    return path


def keys(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, ["keys", *args],
                              env={"HL7GW_SPOOL_KEYS": None, "HL7GW_CONFIG": None,
                                   **(env or {})})


def key_file_materials(path: Path) -> list[str]:
    return [k["material"] for k in json.loads(path.read_text())["keys"]]


def shows_no_material(result: Result, materials: list[str]) -> bool:
    text = result.stdout + result.stderr
    return not any(m in text or base64.b64decode(m).hex() in text for m in materials)


@pytest.fixture
def file_config(tmp_path: Path) -> tuple[Path, Path]:
    key_file = tmp_path / "secure" / "keys.json"
    return config(tmp_path, f"encryption: {{provider: file, key_file: {key_file}}}"), key_file


def test_init_creates_the_key_file_and_prints_only_the_id(file_config: tuple[Path, Path]
                                                           ) -> None:
    cfg, key_file = file_config
    result = keys("init", "--config", str(cfg))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(key_file.read_text())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert f"created {key_file} (mode 600, provider file) with key {doc['current']}" \
        in result.stdout
    assert "Back up" in result.stdout
    assert shows_no_material(result, key_file_materials(key_file))


def test_init_refuses_to_overwrite(file_config: tuple[Path, Path]) -> None:
    cfg, key_file = file_config
    assert keys("init", "--config", str(cfg)).exit_code == 0
    before = key_file.read_bytes()
    again = keys("init", "--config", str(cfg))
    assert again.exit_code == 2
    assert again.stderr.startswith(f"error: key file {key_file} already exists")
    assert key_file.read_bytes() == before


def test_rotate_adds_a_current_key_and_says_what_next(file_config: tuple[Path, Path]) -> None:
    cfg, key_file = file_config
    keys("init", "--config", str(cfg))
    first = json.loads(key_file.read_text())["current"]
    result = keys("rotate", "--config", str(cfg))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(key_file.read_text())
    assert doc["keys"][0]["id"] == first and doc["current"] != first
    assert f"added key {doc['current']} to {key_file}: current now (was {first})" \
        in result.stdout
    assert "send it SIGHUP (kill -HUP <pid>)" in result.stdout
    assert f"hl7gw keys rewrap --config {cfg}" in result.stdout
    assert shows_no_material(result, key_file_materials(key_file))


def test_list_shows_ids_dates_and_the_current_key(file_config: tuple[Path, Path]) -> None:
    cfg, key_file = file_config
    keys("init", "--config", str(cfg))
    keys("rotate", "--config", str(cfg))
    doc = json.loads(key_file.read_text())
    result = keys("list", "--config", str(cfg), "--check")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"provider file, key file {key_file}"
    assert lines[1].split() == ["ID", "CREATED", "CURRENT"]
    old, new = doc["keys"]
    assert lines[2].split() == [old["id"], old["created"]]
    assert lines[3].split() == [new["id"], new["created"], "current"]
    assert lines[4].startswith(f"check: 2 key(s) load as the gateway loads them; {new['id']}")
    assert shows_no_material(result, key_file_materials(key_file))


def test_a_readable_key_file_is_refused_with_the_fix(file_config: tuple[Path, Path]) -> None:
    cfg, key_file = file_config
    keys("init", "--config", str(cfg))
    key_file.chmod(0o644)
    result = keys("list", "--config", str(cfg))
    assert result.exit_code == 2
    assert f"run `chmod 600 {key_file}`" in result.stderr


def test_a_config_without_the_section_is_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path, "")
    result = keys("init", "--config", str(cfg))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {cfg} has no encryption: section")
    assert list(tmp_path.iterdir()) == [cfg]


def test_a_config_mistake_names_file_line_and_field(tmp_path: Path) -> None:
    cfg = config(tmp_path, "encryption:\n  provider: aws-kms")
    result = keys("init", "--config", str(cfg))
    assert result.exit_code == 2
    assert f"error: {cfg}:2: encryption.kms_key_id: provider aws-kms needs" in result.stderr


def test_env_init_prints_the_value_alone_on_stdout(tmp_path: Path) -> None:
    cfg = config(tmp_path, "encryption: {provider: env}")
    result = keys("init", "--config", str(cfg))
    assert result.exit_code == 0, result.stderr
    value = result.stdout.removesuffix("\n")
    assert "\n" not in value
    (key,) = parse_env_keys("HL7GW_SPOOL_KEYS", value)
    assert f"value for HL7GW_SPOOL_KEYS, with key {key.id}" in result.stderr
    assert "secret" in result.stderr
    assert value not in result.stderr and value.split("=", 1)[1] not in result.stderr
    assert list(tmp_path.iterdir()) == [cfg]  # nothing written

    refused = keys("init", "--config", str(cfg), env={"HL7GW_SPOOL_KEYS": value})
    assert refused.exit_code == 2 and "already set" in refused.stderr


def test_env_rotate_prints_the_new_value_with_the_old_keys_after(tmp_path: Path) -> None:
    cfg = config(tmp_path, "encryption: {provider: env}")
    old = keys("init", "--config", str(cfg)).stdout.strip()
    result = keys("rotate", "--config", str(cfg), env={"HL7GW_SPOOL_KEYS": old})
    assert result.exit_code == 0, result.stderr
    new = result.stdout.strip()
    assert new.endswith("," + old)
    new_key = parse_env_keys("X", new)[0]
    assert f"key {new_key.id} is current" in result.stderr
    assert "restart the gateway" in result.stderr and "hl7gw keys rewrap" in result.stderr
    assert old not in result.stderr and new not in result.stderr

    listed = keys("list", "--config", str(cfg), env={"HL7GW_SPOOL_KEYS": new})
    assert listed.exit_code == 0, listed.stderr
    old_id = parse_env_keys("X", old)[0].id
    assert [ln.split() for ln in listed.stdout.splitlines()[2:]] == [
        [old_id, "-"], [new_key.id, "-", "current"]]
    assert base64.b64encode(new_key.material).decode() not in listed.stdout


def test_kms_init_rotate_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kms = FakeKms()
    monkeypatch.setattr(manage, "make_kms_client", lambda settings: kms)
    monkeypatch.setattr(providers, "make_kms_client", lambda settings: kms)
    key_file = tmp_path / "keys.json"
    cfg = config(tmp_path, f"encryption: {{provider: aws-kms, key_file: {key_file}, "
                           f"kms_key_id: '{ARN}'}}")
    for command in ("init", "rotate"):
        result = keys(command, "--config", str(cfg))
        assert result.exit_code == 0, result.stderr
        assert not any(base64.b64encode(p).decode() in result.stdout for p in kms.plain)
    listed = keys("list", "--config", str(cfg), "--check")
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split() == ["ID", "CREATED", "CURRENT", "KMS", "KEY"]
    assert all(line.split()[-1] == ARN for line in listed.stdout.splitlines()[2:4])
    assert "check: 2 key(s) load" in listed.stdout


def test_hl7gw_help_lists_the_keys_group() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "keys" in result.stdout.split("Commands:")[1]
