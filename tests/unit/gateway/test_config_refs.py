"""Secrets outside the config file: ``${env:NAME}`` and ``${file:PATH}`` values."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.config_refs import MAX_SECRET_BYTES
from gateway.errors import ConfigError

SASL = """\
kafka:
  bootstrap_servers: 127.0.0.1:9092
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_username: gateway
  sasl_password: {password}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(text)
    return path


def test_secret_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, SASL.format(password="${env:KAFKA_PASSWORD}"))
    s = load_settings(path, env={"KAFKA_PASSWORD": "s3cret"})
    assert s.kafka.sasl_password is not None
    assert s.kafka.sasl_password.get_secret_value() == "s3cret"
    assert s.kafka.client_options()["sasl_plain_password"] == "s3cret"


def test_secrets_from_files_as_a_kubernetes_secret_volume_mounts_them(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "kafka-password").write_text("from-a-file\n")  # the newline is not part of it
    (secrets / "oidc-client-secret").write_text("oidc-s3cret")
    token = "tok-olga"
    (secrets / "olga.sha256").write_text(hashlib.sha256(token.encode()).hexdigest())
    path = write(tmp_path, SASL.format(password=f"${{file:{secrets}/kafka-password}}") + f"""\
bridge:
  target_url: https://fn.example/events
  auth:
    type: oidc
    token_url: https://idp.example/token
    client_id: gateway
    client_secret: ${{file:{secrets}/oidc-client-secret}}
console:
  users:
    - {{name: olga, role: operator, token_sha256: "${{file:{secrets}/olga.sha256}}"}}
""")
    s = load_settings(path, env={})
    assert s.kafka.sasl_password is not None
    assert s.kafka.sasl_password.get_secret_value() == "from-a-file"
    assert s.bridge is not None and s.bridge.auth is not None
    assert s.bridge.auth.client_secret.get_secret_value() == "oidc-s3cret"  # type: ignore[union-attr]
    assert s.console.users[0].token_sha256 == hashlib.sha256(token.encode()).hexdigest()


def test_relative_file_is_relative_to_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("rel")
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "etc"
    config.mkdir()
    s = load_settings(write(config, SASL.format(password="${file:pw}")), env={})
    assert s.kafka.sasl_password is not None
    assert s.kafka.sasl_password.get_secret_value() == "rel"


def test_a_secret_is_never_shown(tmp_path: Path) -> None:
    path = write(tmp_path, SASL.format(password="${env:KAFKA_PASSWORD}"))
    s = load_settings(path, env={"KAFKA_PASSWORD": "s3cret"})
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())


@pytest.mark.parametrize(("value", "env", "problem"), [
    ("${env:KAFKA_PASSWORD}", {}, "environment variable KAFKA_PASSWORD is not set"),
    ("${env:KAFKA_PASSWORD}", {"KAFKA_PASSWORD": ""}, "environment variable KAFKA_PASSWORD "
                                                      "is empty"),
    ("${KAFKA_PASSWORD}", {"KAFKA_PASSWORD": "x"}, "'${KAFKA_PASSWORD}' is not a reference "
                                                   "this config understands"),
    ("${ENV:KAFKA_PASSWORD}", {}, "'${ENV:KAFKA_PASSWORD}' is not a reference"),
    ("${env:KAFKA PASSWORD}", {}, "'${env:KAFKA PASSWORD}' is not a reference"),
    ("${file:/nonexistent/hl7gw/pw}", {}, "cannot read /nonexistent/hl7gw/pw: No such file"),
])
def test_a_bad_reference_names_file_line_and_field(tmp_path: Path, value: str,
                                                   env: dict[str, str], problem: str) -> None:
    path = write(tmp_path, SASL.format(password=value))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env)
    assert str(info.value).startswith(f"{path}:6: kafka.sasl_password: {problem}")


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "is empty"),
    (b"\n", "is empty"),
    (b"\xff\xfe", "is not UTF-8 text"),
    (b"x" * (MAX_SECRET_BYTES + 1), "is over 64 KiB"),
])
def test_a_bad_secret_file_is_refused_without_showing_it(tmp_path: Path, content: bytes,
                                                         problem: str) -> None:
    secret = tmp_path / "pw"
    secret.write_bytes(content)
    path = write(tmp_path, SASL.format(password=f"${{file:{secret}}}"))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}:6: kafka.sasl_password: {secret} {problem}")
    assert "xxx" not in message


def test_only_whole_values_are_references(tmp_path: Path) -> None:
    path = write(tmp_path, "source: urn:${env:SITE}\n" + SASL.format(password="plain"))
    assert load_settings(path, env={"SITE": "x"}).source == "urn:${env:SITE}"


def test_bootstrap_variable_still_wins(tmp_path: Path) -> None:
    path = write(tmp_path, SASL.format(password="p").replace(
        "127.0.0.1:9092", "${env:BROKERS}"))
    s = load_settings(path, env={"BROKERS": "a:1", "KAFKA_BOOTSTRAP_SERVERS": "b:2"})
    assert s.kafka.bootstrap_servers == "b:2"
    assert load_settings(path, env={"BROKERS": "a:1"}).kafka.bootstrap_servers == "a:1"
