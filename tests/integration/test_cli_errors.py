"""Every refusal of the hl7gw command is one line on stderr and exit code 2, never a
traceback: bad options, broken config files, a port already taken (issue 16.12, 16.13)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

HL7GW = str(Path(sys.executable).with_name("hl7gw"))
REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"


def run(*args: str, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "HL7GW_CONFIG"}
    return subprocess.run([HL7GW, *args], capture_output=True, text=True, timeout=timeout,
                          env={**environ, **(env or {})}, cwd=REPO, check=False)


def error_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the JSON log lines the gateway writes while it starts and stops."""
    assert "Traceback" not in out.stderr, out.stderr
    return [ln for ln in out.stderr.splitlines() if ln.strip() and not ln.startswith("{")]


def test_unknown_time_zone_is_a_usage_error() -> None:
    # was a 60-line traceback, exit 1
    out = run("map", "--timezone", "Mars/Olympus", str(SAMPLES / "adt_a01.hl7"))
    assert out.returncode == 2
    assert out.stdout == ""
    assert error_lines(out)[-1] == ("Error: Invalid value for '--timezone': unknown time zone "
                                    "'Mars/Olympus' (use an IANA name such as Europe/Paris)")


@pytest.mark.parametrize(("broken", "line", "problem"), [
    ("console:\n  users:\n    - {{name: x}}\n", 5, "a key must be plain text"),
    ("http:\n  port: !!int eighty\n", 4, "cannot read 'eighty' as !!int"),
])
def test_serve_with_broken_yaml_says_file_and_line(tmp_path: Path, broken: str, line: int,
                                                   problem: str) -> None:
    # issue 16.12: both were tracebacks from the config loader
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("kafka:\n  bootstrap_servers: 127.0.0.1:9\n" + broken)
    out = run("serve", "--config", str(cfg))
    assert out.returncode == 2
    [message] = error_lines(out)
    assert message.startswith(f"error: {cfg}:{line}: not valid YAML: {problem}")


def test_config_from_the_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("kafka:\n  bootstrap_servers: 127.0.0.1:9\n")
    out = run("bridge", env={"HL7GW_CONFIG": str(cfg)})
    assert out.returncode == 2
    assert error_lines(out) == [f"error: {cfg}: no 'bridge:' section; add one with target_url"]


def test_missing_config_names_the_variable_too() -> None:
    out = run("serve")
    assert out.returncode == 2
    assert "Missing option '--config' (env var: 'HL7GW_CONFIG')" in out.stderr


@pytest.mark.parametrize("via", ["config", "option"])
def test_serve_with_the_mllp_port_taken_says_which_and_what_to_do(
        tmp_path: Path, kafka_bootstrap: str, via: str) -> None:
    # issue 16.13: was a 40-line traceback, exit 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "gw.yaml"
        cfg.write_text(f"""\
listeners:
  - name: adt
    port: {port if via == "config" else free_port()}
http:
  port: 0
spool:
  path: {tmp_path / "spool.db"}
console:
  audit_path: {tmp_path / "audit.jsonl"}
kafka:
  bootstrap_servers: {kafka_bootstrap}
""")
        extra = ["--mllp-port", str(port)] if via == "option" else []
        out = run("serve", "--config", str(cfg), *extra)
    assert out.returncode == 2
    assert error_lines(out) == [
        f"error: cannot listen for MLLP (listener 'adt') on 127.0.0.1:{port}: the port is "
        "already in use (another gateway, or another program?): stop it, or choose another "
        "port with listeners[].port or hl7gw serve --mllp-port"]


def test_serve_with_the_http_port_taken_is_the_same_kind_of_line(
        tmp_path: Path, kafka_bootstrap: str) -> None:
    # was uvicorn's log line and exit code 3
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "gw.yaml"
        cfg.write_text(f"""\
listeners: [{{port: 0}}]
http: {{port: {port}}}
spool: {{path: {tmp_path / "spool.db"}}}
console: {{audit_path: {tmp_path / "audit.jsonl"}}}
kafka: {{bootstrap_servers: "{kafka_bootstrap}"}}
""")
        out = run("serve", "--config", str(cfg))
    assert out.returncode == 2
    assert error_lines(out) == [
        f"error: cannot listen for HTTP on 127.0.0.1:{port}: the port is already in use "
        "(another gateway, or another program?): stop it, or choose another port with "
        "http.port or hl7gw serve --http-port"]
