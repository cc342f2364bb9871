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
        assert 'hl7gw_acks_total{code="CA",listener="adt",sender="other"} 2.0' in metrics
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
    # Results back to a local EHR: the vitals sample (LOINC codes by its profile) gets a
    # NEWS2 score, sent back as an ORU^R01.
    cfg.write_text(cfg.read_text().replace(
        "  target_url:", f"  outbound_topic: {kafka_topic}.out\n  target_url:") + f"""\
profiles:
  dir: {PROFILES.resolve()}
outbound:
  topic: {kafka_topic}.out
  group_id: g-{kafka_topic}-out
  destinations:
    - name: ehr
      host: 127.0.0.1
      port: {free_port()}
""")
    out = run("dev", "up", "--once", "--config", str(cfg), "--samples", str(SAMPLES),
              env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}, cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    samples = sorted(SAMPLES.glob("*.hl7"))
    assert out.stdout.count("  CA  ") == len(samples)  # samples ask for enhanced mode
    assert f"events received by the function ({len(samples)})" in out.stdout
    assert out.stdout.count("hl7gw.fhir.") >= 2 * len(samples)  # Kafka + function
    # The vitals sample's NEWS2 score came back to the local EHR as an ORU^R01, ACKed.
    assert "<- ORU^R01" in out.stdout and "NEWS2" in out.stdout
    assert "results back at the local EHR (1)" in out.stdout, out.stdout


def _wait_port(port: int, within: float = 30) -> None:
    import socket

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


# -- sender profiles, console tokens ---------------------------------------------------------

PROFILES = SAMPLES / "profiles"
ORU = SAMPLES / "messages" / "oru_r01.hl7"
RIVERSIDE_MRN = "https://riverside.example/fhir/sid/mrn"  # sunlab.yaml's identifier system


def _mrn_system(stdout: str) -> str:
    bundle = orjson.loads(stdout)
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    return str(patient["identifier"][0]["system"])


def test_map_with_a_profile_chosen_by_msh_named_or_absent(tmp_path: Path) -> None:
    plain = run("map", str(ORU))
    assert plain.returncode == 0, plain.stderr
    assert _mrn_system(plain.stdout) == "urn:oid:2.16.840.1.113883.3.7777.1"

    auto = run("map", "--profiles", str(PROFILES), str(ORU))
    assert auto.returncode == 0, auto.stderr
    assert _mrn_system(auto.stdout) == RIVERSIDE_MRN
    assert f"profile: sunlab ({PROFILES}/sunlab.yaml)" in auto.stderr

    # Another sender: no profile matches by MSH, unless one is named.
    other = tmp_path / "other.hl7"
    other.write_bytes(ORU.read_bytes().replace(b"|SUNLAB|", b"|OTHERLAB|", 1))
    unmatched = run("map", "--profiles", str(PROFILES), str(other))
    assert unmatched.returncode == 0, unmatched.stderr
    assert _mrn_system(unmatched.stdout) != RIVERSIDE_MRN
    assert "profile: none matches MSH-3 OTHERLAB, MSH-4 RIVERSIDE" in unmatched.stderr
    named = run("map", "--profile", "sunlab", "--profiles", str(PROFILES), str(other))
    assert named.returncode == 0, named.stderr
    assert _mrn_system(named.stdout) == RIVERSIDE_MRN

    explained = run("map", "--explain", "--profile", "sunlab", "--profiles", str(PROFILES),
                    str(other))
    assert explained.returncode == 0, explained.stderr
    assert "sender profile 'sunlab'" in explained.stdout

    # --config: profiles.dir from the gateway config
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"kafka: {{bootstrap_servers: 'unused:1'}}\nprofiles: {{dir: {PROFILES}}}\n")
    from_config = run("map", "--config", str(cfg), "--profile", "sunlab", str(other))
    assert from_config.returncode == 0, from_config.stderr
    assert _mrn_system(from_config.stdout) == RIVERSIDE_MRN

    unknown = run("map", "--profile", "nope", "--profiles", str(PROFILES), str(ORU))
    assert unknown.returncode == 2
    assert "no profile named 'nope'; known: sunlab, wardvitals" in unknown.stderr
    no_dir = run("map", "--profile", "sunlab", str(ORU))
    assert no_dir.returncode == 2 and "--profiles DIR" in no_dir.stderr


def test_profiles_check_lists_profiles_and_maps_messages_with_them(tmp_path: Path) -> None:
    out = run("profiles", "check", str(PROFILES), "--message", str(ORU),
              "--message", str(SAMPLES / "adt_a01.hl7"))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"sunlab  application=SUNLAB facility=RIVERSIDE version=*  "
                               f"{PROFILES}/sunlab.yaml")
    assert re.search(rf"^{re.escape(str(ORU))}#1: profile sunlab: ORU\^R01 -> \d+ resources",
                     out.stdout, re.M)
    assert re.search(r"adt_a01\.hl7#1: no profile \(MSH-3 EPICADT, MSH-4 GOODHEALTH, "
                     r"MSH-12 2\.5\.1\): ADT\^A01 -> ", out.stdout, re.M)

    # a message the mapper refuses with the profile: exit 2, the field named
    bad = tmp_path / "bad.hl7"
    bad.write_bytes(ORU.read_bytes().replace(b"ORU^R01^ORU_R01", b"ORU^R99", 1))
    refused = run("profiles", "check", str(PROFILES), "--message", str(bad))
    assert refused.returncode == 2
    assert "profile sunlab: refused:" in refused.stdout and "MSH-9" in refused.stdout


def test_profiles_check_reports_file_line_and_field_with_exit_2(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "good.yaml").write_text("profile: good\nmatch: {application: GOOD}\n")
    (folder / "typo.yaml").write_text(
        "profile: typo\nmatch: {application: TYPO}\ntimezon: Europe/Vienna\n")
    (folder / "zone.yaml").write_text(
        "profile: zone\nmatch: {application: ZONE}\n\ntimezone: Mars/Olympus\n")
    out = run("profiles", "check", str(folder))
    assert out.returncode == 2
    assert f"{folder}/typo.yaml:3: timezon: unknown key" in out.stdout
    assert f"{folder}/zone.yaml:4: timezone:" in out.stdout and "Mars/Olympus" in out.stdout
    assert "2 problem(s)" in out.stderr
    assert "good" not in out.stdout  # no listing when the folder would be refused


def test_console_token_prints_a_token_and_the_line_with_its_hash() -> None:
    import hashlib

    import yaml

    from gateway.config import ConsoleUser

    out = run("console", "token", "alice", "--role", "operator")
    assert out.returncode == 0, out.stderr
    token, line = out.stdout.splitlines()
    assert len(token) >= 43  # 32 random bytes, base64url
    [entry] = yaml.safe_load(line)
    user = ConsoleUser.model_validate(entry)
    assert (user.name, user.role) == ("alice", "operator")
    assert user.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert "console.users" in out.stderr

    again = run("console", "token", "Dr. O'Neil: night shift", "--role", "viewer")
    token2, line2 = again.stdout.splitlines()
    assert token2 != token  # a new random token each time
    [entry2] = yaml.safe_load(line2)
    assert entry2["name"] == "Dr. O'Neil: night shift" and entry2["role"] == "viewer"
    assert run("console", "token", "bob", "--role", "admin").returncode == 2


def test_serve_reloads_profiles_on_sighup_and_keeps_running(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str) -> None:
    import shutil

    mllp, http = free_port(), free_port()
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES, folder)
    cfg = config(tmp_path, kafka_bootstrap, kafka_topic, mllp=mllp, http=http,
                 function=free_port())
    cfg.write_text(cfg.read_text() + f"profiles:\n  dir: {folder}\n  watch_interval_s: 0\n")
    server = subprocess.Popen([HL7GW, "serve", "--config", str(cfg)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_port(http)
        deadline = time.monotonic() + 30
        while True:  # HTTP answers a moment before start() returns
            ready = httpx.get(f"http://127.0.0.1:{http}/readyz")
            if ready.status_code == 200:
                break
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.1)
        assert ready.json()["profiles"] == {"dir": str(folder), "loaded": ["sunlab", "wardvitals"],
                                            "generation": 1, "last_error": None}
        text = (folder / "sunlab.yaml").read_text()
        (folder / "sunlab.yaml").write_text(text.replace("profile: sunlab", "profile: sunlab2"))
        server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while True:
            state = httpx.get(f"http://127.0.0.1:{http}/readyz").json()["profiles"]
            if state["generation"] == 2:
                break
            assert server.poll() is None, "SIGHUP ended the gateway"
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert state["loaded"] == ["sunlab2", "wardvitals"] and state["last_error"] is None
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
        _, stderr = server.communicate()
        reloaded = [orjson.loads(line) for line in stderr.splitlines()
                    if line.startswith("{") and "profiles reloaded" in line]
        assert reloaded and reloaded[0]["profiles"] == ["sunlab2", "wardvitals"]
        assert reloaded[0]["generation"] == 2
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
