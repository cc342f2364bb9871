"""Unit tests for gateway.dev.kafka: rendering, ports, probe, jar cache, process supervision.

No real broker here: Maven and Java are replaced by small shell scripts where needed.
"""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.dev import kafka
from gateway.dev.kafka import (
    LocalKafka,
    choose_ports,
    default_cache_dir,
    ensure_jars,
    free_port,
    metadata_ready,
    render_pom,
    render_server_properties,
    require_tool,
)
from gateway.errors import BrokerUnavailable, GatewayError, MissingTool
from mappers.errors import Hl7gwError

VERSION = "9.9.9"


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` lines into a dict, comments skipped."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


def executable(path: Path, body: str) -> str:
    """Write a ``/bin/sh`` script and make it executable; its path."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def fake_mvn(tmp_path: Path) -> str:
    """A stand-in for ``mvn`` that 'downloads' two jars and counts its calls."""
    return executable(tmp_path / "mvn", f"""
echo call >> "{tmp_path}/mvn-calls"
for a in "$@"; do case "$a" in -DoutputDirectory=*) out="${{a#-DoutputDirectory=}}";; esac; done
mkdir -p "$out" && touch "$out/kafka_2.13-{VERSION}.jar" "$out/kafka-clients-{VERSION}.jar"
""")


def mvn_calls(tmp_path: Path) -> int:
    calls = tmp_path / "mvn-calls"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_server_properties_single_combined_node_on_loopback(tmp_path: Path) -> None:
    props = parse_properties(
        render_server_properties(port=19092, controller_port=19093, log_dir=tmp_path / "data")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "true"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"


def test_pom_lists_kafka_and_the_log4j_binding() -> None:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.fromstring(render_pom("4.1.1", "2.24.3"))
    deps = {
        (d.findtext("m:artifactId", namespaces=ns), d.findtext("m:version", namespaces=ns))
        for d in root.iterfind("m:dependencies/m:dependency", ns)
    }
    assert deps == {
        ("kafka_2.13", "4.1.1"), ("log4j-slf4j-impl", "2.24.3"), ("log4j-core", "2.24.3")
    }


def test_choose_ports_gives_two_distinct_free_ports() -> None:
    broker, controller = choose_ports()
    assert broker != controller
    for port in (broker, controller):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_choose_ports_honours_an_explicit_free_port() -> None:
    wanted = free_port()
    broker, controller = choose_ports(wanted)
    assert broker == wanted
    assert controller != wanted


def test_choose_ports_refuses_an_explicit_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(BrokerUnavailable, match="not free"):
            choose_ports(busy.getsockname()[1])


def test_free_port_skips_excluded_ports() -> None:
    first = free_port()
    assert free_port(exclude=frozenset({first})) != first


@pytest.fixture
def fake_broker() -> Iterator[tuple[int, list[bytes]]]:
    """A one-shot server answering a Metadata request with one broker; (port, requests)."""
    requests: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            size = int.from_bytes(conn.recv(4), "big")
            request = conn.recv(size)
            requests.append(request)
            body = request[4:8] + (1).to_bytes(4, "big")  # echoed correlation id, 1 broker
            conn.sendall(len(body).to_bytes(4, "big") + body)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield server.getsockname()[1], requests
    thread.join(timeout=5)
    server.close()


def test_metadata_ready_sends_a_metadata_request(fake_broker: tuple[int, list[bytes]]) -> None:
    port, requests = fake_broker
    assert metadata_ready("127.0.0.1", port)
    assert requests[0][:4] == b"\x00\x03\x00\x01"  # api key 3 (Metadata), version 1


def test_metadata_ready_is_false_when_nothing_listens() -> None:
    assert not metadata_ready("127.0.0.1", free_port(), timeout=0.5)


def test_metadata_ready_is_false_when_the_peer_hangs_up() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        def hang_up() -> None:
            conn, _ = server.accept()
            conn.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        assert not metadata_ready("127.0.0.1", server.getsockname()[1], timeout=2)
        thread.join(timeout=5)


def test_missing_tool_says_what_to_install_in_one_line() -> None:
    with pytest.raises(MissingTool) as caught:
        require_tool("/nonexistent/java", kafka.JAVA_HINT)
    message = str(caught.value)
    assert "\n" not in message
    assert "openjdk-17-jre-headless" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message
    assert isinstance(caught.value, GatewayError)
    assert isinstance(caught.value, Hl7gwError)


def test_first_fetch_runs_maven_once_then_never(tmp_path: Path, fake_mvn: str) -> None:
    libs = ensure_jars(tmp_path / "cache", VERSION, mvn=fake_mvn)
    assert (libs / f"kafka_2.13-{VERSION}.jar").is_file()
    assert (libs.parent / "fetched.ok").is_file()
    assert ensure_jars(tmp_path / "cache", VERSION, mvn="/nonexistent/mvn") == libs
    assert mvn_calls(tmp_path) == 1


def test_fetch_without_marker_is_redone(tmp_path: Path, fake_mvn: str) -> None:
    stale = tmp_path / "cache" / f"kafka-{VERSION}" / "libs"
    stale.mkdir(parents=True)
    (stale / "half-downloaded.jar").touch()  # a killed fetch: jars but no marker
    libs = ensure_jars(tmp_path / "cache", VERSION, mvn=fake_mvn)
    assert mvn_calls(tmp_path) == 1
    assert sorted(p.name for p in libs.iterdir()) == [
        f"kafka-clients-{VERSION}.jar", f"kafka_2.13-{VERSION}.jar"
    ]


def test_missing_maven_on_empty_cache_is_a_missing_tool(tmp_path: Path) -> None:
    with pytest.raises(MissingTool, match="apt-get install maven"):
        ensure_jars(tmp_path / "cache", VERSION, mvn="/nonexistent/mvn")


def test_failed_maven_fetch_reports_its_output_and_leaves_no_marker(tmp_path: Path) -> None:
    mvn = executable(tmp_path / "mvn", 'echo "Could not resolve dependencies"; exit 1\n')
    with pytest.raises(BrokerUnavailable, match="Could not resolve dependencies"):
        ensure_jars(tmp_path / "cache", VERSION, mvn=mvn)
    assert not (tmp_path / "cache" / f"kafka-{VERSION}" / "fetched.ok").exists()


def test_broker_that_exits_early_raises_with_the_log_tail(tmp_path: Path, fake_mvn: str) -> None:
    java = executable(tmp_path / "java", """
case "$*" in *StorageTool*) exit 0;; esac
echo "ERROR Exiting Kafka due to fatal exception: bad listener"; exit 3
""")
    broker = LocalKafka(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                        kafka_version=VERSION, java=java, mvn=fake_mvn)
    with pytest.raises(BrokerUnavailable, match="code 3") as caught:
        broker.start(timeout=30)
    assert "bad listener" in str(caught.value)
    assert not broker.is_running()


def test_missing_java_is_a_missing_tool(tmp_path: Path) -> None:
    broker = LocalKafka(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                        java="/nonexistent/java")
    with pytest.raises(MissingTool, match="Java 17"):
        broker.start()


def test_unstarted_broker_has_no_address_and_stops_quietly(tmp_path: Path) -> None:
    broker = LocalKafka(data_dir=tmp_path, cache_dir=tmp_path)
    with pytest.raises(BrokerUnavailable, match="not been started"):
        _ = broker.bootstrap_servers
    broker.stop()
    broker.stop()


def test_default_cache_dir_prefers_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HL7GW_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"


def test_default_cache_dir_is_in_the_enclosing_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HL7GW_CACHE_DIR", raising=False)
    (tmp_path / ".git").mkdir()
    (tmp_path / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "src" / "deep")
    assert default_cache_dir() == tmp_path / ".cache" / "hl7gw"


def test_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # uuid bytes whose url-safe base64 starts with "-" (0xf8 → "-"), then a normal one.
    dashed = uuid.UUID(bytes=b"\xf8" + b"\x00" * 15)
    normal = uuid.UUID(bytes=b"\x00" * 16)
    ids = iter([dashed, normal])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(ids))
    assert kafka.new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_stop_kills_a_broker_that_ignores_sigterm_within_the_deadline(tmp_path: Path) -> None:
    # A JVM stuck in its controlled shutdown must not hang a test or `hl7gw dev kafka`.
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"],
                                stdout=subprocess.PIPE)
    assert stubborn.stdout is not None
    try:
        assert stubborn.stdout.readline() == b"ready\n"  # SIGTERM is ignored from here on
        broker = LocalKafka(data_dir=tmp_path, cache_dir=tmp_path)
        broker._process = stubborn
        began = time.monotonic()
        broker.stop(timeout=0.5)
        assert time.monotonic() - began < 0.5 + 10
        assert stubborn.poll() is not None and not broker.is_running()
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()
        stubborn.stdout.close()
