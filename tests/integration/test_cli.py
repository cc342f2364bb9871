"""The hl7gw command as a user runs it: real processes, sockets, broker and signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

import mappers._accel
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

HL7GW = str(Path(sys.executable).with_name("hl7gw"))
REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HL7GW, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd or REPO, check=False)


def config(tmp_path: Path, bootstrap: str, topic: str, *, mllp: int, http: int,
           function: int) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"""\
source: urn:hl7gw:cli-test
listeners:
  - name: adt
    port: {mllp}
http:
  port: {http}
spool:
  path: {tmp_path / "spool.db"}
kafka:
  bootstrap_servers: {bootstrap}
  topic: {topic}
bridge:
  topic: {topic}
  group_id: g-{topic}
  target_url: http://127.0.0.1:{function}/events
function:
  port: {function}
""")
    return path


def test_help_lists_the_commands() -> None:
    out = run("--help")
    assert out.returncode == 0
    for command in ("serve", "map", "send", "bridge", "function", "dev", "bench"):
        assert re.search(rf"^\s+{command}\s", out.stdout, re.M), command


def test_map_prints_a_bundle_the_r4_models_accept() -> None:
    out = run("map", str(SAMPLES / "adt_a01.hl7"))
    assert out.returncode == 0, out.stderr
    bundle = Bundle.model_validate(orjson.loads(out.stdout))
    kinds = sorted(e.resource.get_resource_type() for e in bundle.entry or [])
    assert {"MessageHeader", "Patient", "Encounter"} <= set(kinds)


def test_map_explain_names_the_source_fields() -> None:
    out = run("map", "--explain", str(SAMPLES / "adt_a01.hl7"))
    assert out.returncode == 0, out.stderr
    assert re.search(r"Patient\.name\[0\]\.family <- PID-5\.1", out.stdout)
    assert "Everyman" not in out.stdout  # element paths and field names, not values


def test_map_refuses_with_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hl7"
    text = (SAMPLES / "adt_a01.hl7").read_bytes().replace(b"ADT^A01^ADT_A01", b"ADT^A99", 1)
    bad.write_bytes(text)
    out = run("map", str(bad))
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "A99" in lines[0] and "MSH-9" in lines[0]


def test_serve_send_metrics_and_sigterm(tmp_path: Path, kafka_bootstrap: str,
                                        kafka_topic: str) -> None:
    mllp, http = free_port(), free_port()
    cfg = config(tmp_path, kafka_bootstrap, kafka_topic, mllp=mllp, http=http,
                 function=free_port())
    server = subprocess.Popen([HL7GW, "serve", "--config", str(cfg)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{http}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "gateway never became ready"
            time.sleep(0.1)
        sent = run("send", "--port", str(mllp), str(SAMPLES / "adt_a01.hl7"),
                   str(SAMPLES / "adt_a04.hl7"))
        assert sent.returncode == 0, sent.stderr
        assert [ln.split()[0] for ln in sent.stdout.splitlines()] == ["CA", "CA"]
        assert "2 sent, 2 accepted, 0 refused" in sent.stderr
        metrics = httpx.get(f"http://127.0.0.1:{http}/metrics").text
        assert 'hl7gw_acks_total{code="CA",listener="adt"} 2.0' in metrics
        # make test runs against the compiled mapper (make setup builds it) and says so
        build = httpx.get(f"http://127.0.0.1:{http}/readyz").json()["mapper"]
        assert build == mappers._accel.status()
        assert f'hl7gw_mapper_info{{build="{build.split()[0]}",detail="{build}"}} 1.0' \
            in metrics
        assert httpx.get(f"http://127.0.0.1:{http}/healthz").json() == {"status": "ok"}
        began = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
        assert time.monotonic() - began < 15
        _, stderr = server.communicate()
        # Logs are JSON lines and carry no patient data.
        for line in stderr.splitlines():
            if line.startswith("{"):
                assert "Everyman" not in line and "4820017" not in line
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_send_reports_refusals_with_exit_1(tmp_path: Path, kafka_bootstrap: str,
                                           kafka_topic: str) -> None:
    mllp, http = free_port(), free_port()
    cfg = config(tmp_path, kafka_bootstrap, kafka_topic, mllp=mllp, http=http,
                 function=free_port())
    junk = tmp_path / "junk.hl7"
    junk.write_text("MSH|^~\\&|A|B|C|D|20240101||ZZZ^Z99|X1|P|2.5.1\rPID|1\r")
    with subprocess.Popen([HL7GW, "serve", "--config", str(cfg)], cwd=REPO,
                          stderr=subprocess.PIPE, text=True) as server:
        try:
            _wait_port(mllp)
            out = run("send", "--port", str(mllp), str(junk))
            assert out.returncode == 1
            assert out.stdout.split()[0] == "AR"
        finally:
            server.terminate()
            server.wait(20)


def test_send_to_nothing_says_so(tmp_path: Path) -> None:
    out = run("send", "--port", str(free_port()), "--timeout", "2",
              str(SAMPLES / "adt_a01.hl7"))
    assert out.returncode == 2
    assert "cannot connect" in out.stderr


def test_dev_up_once_runs_the_whole_pipeline(tmp_path: Path, kafka_bootstrap: str,
                                             kafka_topic: str) -> None:
    cfg = config(tmp_path, kafka_bootstrap, kafka_topic, mllp=free_port(), http=free_port(),
                 function=free_port())
    out = run("dev", "up", "--once", "--config", str(cfg), "--samples", str(SAMPLES),
              env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}, cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    samples = sorted(SAMPLES.glob("*.hl7"))
    assert out.stdout.count("  CA  ") == len(samples)  # samples ask for enhanced mode
    assert f"events received by the function ({len(samples)})" in out.stdout
    assert out.stdout.count("hl7gw.fhir.adt.") >= 2 * len(samples)  # Kafka + function


def _wait_port(port: int, within: float = 30) -> None:
    import socket

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")
