"""``hl7gw dev up`` (make run): its workspace settings and the console token of a run."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gateway.config import ConsoleUser, load_settings
from gateway.dev.up import WORKSPACE, _local

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "gateway.yaml"


def test_a_run_without_console_users_gets_an_operator_token_of_its_own() -> None:
    settings, token = _local(load_settings(SAMPLE, env={}), "127.0.0.1:1")
    assert token is not None and len(token) >= 24
    (user,) = settings.console.users
    assert user.role == "operator"
    assert user.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert settings.console.audit_path == WORKSPACE / "audit.jsonl"
    assert settings.spool.path == WORKSPACE / "spool.db"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:1"
    _, again = _local(load_settings(SAMPLE, env={}), "127.0.0.1:1")
    assert again != token  # a new one every run


def test_configured_console_users_are_kept_and_no_token_is_made() -> None:
    base = load_settings(SAMPLE, env={})
    mine = ConsoleUser(name="ops", role="viewer", token_sha256="0" * 64)
    settings, token = _local(base.model_copy(update={"console": base.console.model_copy(
        update={"users": [mine]})}), "127.0.0.1:1")
    assert token is None and settings.console.users == [mine]


def test_the_sample_config_names_the_sample_profiles() -> None:
    assert load_settings(SAMPLE, env={}).profiles.dir == Path("samples/profiles")
