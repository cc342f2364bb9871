"""A real single-node Apache Kafka broker (KRaft) for development and tests.

The broker runs from Maven Central jars: no Docker, no Apache download site. The jars are
fetched once into ``cache_dir/kafka-<version>/libs`` (``gateway.dev.kafka_jars``); later starts
only format the data directory (if new) and launch ``kafka.Kafka`` with the single-node
settings in ``SERVER_PROPERTIES`` below. Used by ``hl7gw dev kafka`` and the tests' fixture.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from types import TracebackType

from gateway.dev.kafka_jars import (
    ensure_jars,
    last_lines,
    render_pom,
    require_tool,
)
from gateway.errors import BrokerUnavailable, GatewayError
from hl7gw.shutdown import Interrupted, Shutdown

# Re-exported: the jar fetching moved to gateway.dev.kafka_jars; callers import from here.
__all__ = [
    "LocalKafka",
    "choose_ports",
    "default_cache_dir",
    "ensure_jars",
    "free_port",
    "metadata_ready",
    "render_pom",
    "render_server_properties",
    "require_tool",
    "run_broker",
]

HOST = "127.0.0.1"
JAVA_HINT = "Java 17+ (apt-get install openjdk-17-jre-headless)"
JVM_OPTIONS = ("-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
_PR_SET_PDEATHSIG = 1
KILL_WAIT_S = 10.0  # after SIGKILL, for the kernel to end the process
STOP_S = 6.0  # ``hl7gw dev kafka``: SIGTERM, then SIGKILL; 10 s in all with the exit margins

SERVER_PROPERTIES = """\
# Written by gateway.dev.kafka on every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{controller_port}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dir}
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=2097152
num.network.threads=2
num.io.threads=2
background.threads=2
auto.create.topics.enable=true
"""


def _quiet(message: str) -> None:
    """Default progress sink: say nothing."""


def default_cache_dir() -> Path:
    """``$HL7GW_CACHE_DIR``, else ``.cache/hl7gw`` in the enclosing git checkout (or cwd)."""
    configured = os.environ.get("HL7GW_CACHE_DIR")
    if configured:
        return Path(configured)
    cwd = Path.cwd()
    root = next((d for d in (cwd, *cwd.parents) if (d / ".git").exists()), cwd)
    return root / ".cache" / "hl7gw"


def render_server_properties(*, port: int, controller_port: int, log_dir: Path) -> str:
    """The ``server.properties`` of one combined broker+controller node on loopback."""
    return SERVER_PROPERTIES.format(
        host=HOST, port=port, controller_port=controller_port, log_dir=log_dir
    )


def free_port(exclude: frozenset[int] = frozenset()) -> int:
    """A loopback TCP port that is free now (bound to port 0, read, closed)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in exclude:
            return port


def ensure_port_free(port: int) -> None:
    """Raise :class:`BrokerUnavailable` when something already listens on ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Java sets SO_REUSEADDR too, so TIME_WAIT leftovers do not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise BrokerUnavailable(f"port {port} on {HOST} is not free: {exc.strerror}") from exc


def choose_ports(port: int | None = None) -> tuple[int, int]:
    """``(broker_port, controller_port)``: ``port`` if given and free, else free ones."""
    if port is not None:
        ensure_port_free(port)
    broker = port if port is not None else free_port()
    return broker, free_port(exclude=frozenset({broker}))


def metadata_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka Metadata (v1) request is answered with at least one broker."""
    correlation_id = 0x686C37  # any number; the answer must echo it
    client_id = b"hl7gw-probe"
    # Request header v1 (api_key 3 = Metadata, version 1) and an empty topic list.
    request = struct.pack(">hhih", 3, 1, correlation_id, len(client_id)) + client_id
    request += struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _receive_exactly(sock, 4))
            answer = _receive_exactly(sock, size)
    except OSError:
        return False
    if len(answer) < 8:
        return False
    echoed, broker_count = struct.unpack_from(">ii", answer)
    return bool(echoed == correlation_id and broker_count >= 1)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    """Read ``size`` bytes or raise ``ConnectionError`` (an ``OSError``) on early EOF."""
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-answer")
        chunks += chunk
    return bytes(chunks)


def _parent_death_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that SIGTERMs the broker when this process dies, on Linux.

    Linux ties the signal to the *thread* that forked, so it is only armed from the main
    thread: a broker started from a short-lived worker thread would otherwise die with it.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return arm


def new_cluster_id() -> str:
    """A random KRaft cluster id, never starting with "-".

    StorageTool's argument parser reads an id like ``-xY...`` as an option and fails
    (1 start in 64); Kafka's own ``Uuid.randomUuid()`` skips such ids for the same reason.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafka:
    """A single-node KRaft Kafka broker on loopback, run from Maven Central jars."""

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path,
        cache_dir: Path,
        kafka_version: str = "4.1.1",
        log: Callable[[str], None] | None = None,
        java: str = "java",
        mvn: str = "mvn",
    ) -> None:
        self.port = port
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.kafka_version = kafka_version
        self.java = java
        self.mvn = mvn
        self._log = log or _quiet
        self._process: subprocess.Popen[bytes] | None = None
        self._bound_port: int | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"`` of the started broker."""
        if self._bound_port is None:
            raise BrokerUnavailable("LocalKafka has not been started")
        return f"{HOST}:{self._bound_port}"

    @property
    def log_path(self) -> Path:
        """Where the broker's stdout and stderr go."""
        return self.data_dir / "broker.log"

    def is_running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 120) -> str:
        """Fetch (first time), format (new data dir), launch, and wait until it answers.

        ``timeout`` bounds the broker's start-up, not the one-off Maven fetch. Returns the
        bootstrap servers string; raises :class:`MissingTool` or :class:`BrokerUnavailable`.
        """
        if self.is_running():
            return self.bootstrap_servers
        port, controller_port = choose_ports(self.port)
        java = require_tool(self.java, JAVA_HINT)
        libs = ensure_jars(self.cache_dir, self.kafka_version, mvn=self.mvn, log=self._log)
        config = self._write_config(port, controller_port)
        self._format(java, libs, config)
        self._launch(java, libs, config)
        self._bound_port = port
        try:
            self._wait_until_ready(port, timeout)
        except BaseException:
            self.stop()
            self._bound_port = None
            raise
        return self.bootstrap_servers

    def stop(self, timeout: float = STOP_S) -> None:
        """Stop the broker within ``timeout`` seconds (plus a moment for SIGKILL). Idempotent.

        SIGTERM starts Kafka's controlled shutdown (it flushes logs and, in a cluster,
        hands its partitions over); a broker still running after ``timeout`` seconds is
        SIGKILLed, so a test or ``hl7gw dev kafka`` never hangs on a stuck JVM.
        """
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._log(f"Kafka did not stop within {timeout:.0f}s; killing it")
            process.kill()
            try:
                process.wait(KILL_WAIT_S)
            except subprocess.TimeoutExpired:  # unkillable (D state): say so, do not hang
                self._log(f"Kafka (pid {process.pid}) did not exit after SIGKILL")

    def wait(self) -> int | None:
        """Block until the broker process exits; its exit code (None if never started)."""
        return None if self._process is None else self._process.wait()

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_config(self, port: int, controller_port: int) -> Path:
        """Write server.properties and log4j2.properties into the data dir."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log4j = files("gateway.dev").joinpath("kafka_files", "log4j2.properties").read_text()
        (self.data_dir / "log4j2.properties").write_text(log4j)
        config = self.data_dir / "server.properties"
        config.write_text(render_server_properties(
            port=port, controller_port=controller_port, log_dir=self.data_dir / "data"
        ))
        return config

    def _java_command(self, java: str, libs: Path, *args: str) -> list[str]:
        """``java`` with our JVM options, logging config and class path, then ``args``."""
        log4j = self.data_dir / "log4j2.properties"
        return [java, *JVM_OPTIONS, f"-Dlog4j2.configurationFile={log4j}",
                "-cp", f"{libs}/*", *args]

    def _format(self, java: str, libs: Path, config: Path) -> None:
        """Format the log dir with a new cluster id, unless it already was (kept data)."""
        if (self.data_dir / "data" / "meta.properties").is_file():
            self._log(f"reusing Kafka data in {self.data_dir / 'data'}")
            return
        cluster_id = new_cluster_id()
        command = self._java_command(java, libs, "kafka.tools.StorageTool", "format",
                                     "-t", cluster_id, "-c", str(config))
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise BrokerUnavailable(
                f"kafka.tools.StorageTool format failed (exit {done.returncode}):\n"
                + last_lines(done.stdout + done.stderr)
            )

    def _launch(self, java: str, libs: Path, config: Path) -> None:
        """Start ``kafka.Kafka`` with its output in broker.log."""
        command = self._java_command(java, libs, "kafka.Kafka", str(config))
        self._log(f"starting Kafka {self.kafka_version} (log: {self.log_path})")
        with self.log_path.open("wb") as out:
            # Own session: a terminal's Ctrl-C reaches us, and we stop the broker in order.
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_parent_death_hook(),
            )

    def _wait_until_ready(self, port: int, timeout: float) -> None:
        """Poll with Metadata requests until answered, the process exits, or time is up."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while not metadata_ready(HOST, port):
            code = self._process.poll()
            if code is not None:
                raise BrokerUnavailable(
                    f"Kafka exited with code {code} before it was ready; "
                    f"end of {self.log_path}:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"Kafka did not answer on {HOST}:{port} within {timeout:.0f}s; "
                    f"end of {self.log_path}:\n{self._log_tail()}"
                )
            time.sleep(0.2)

    def _log_tail(self) -> str:
        """The last lines of broker.log, for error messages."""
        try:
            return last_lines(self.log_path.read_text(errors="replace"))
        except OSError:
            return "(no broker.log)"


def run_broker(port: int | None = None, data_dir: Path | None = None,
               shutdown: Shutdown | None = None) -> int:
    """``hl7gw dev kafka``: run a local broker until SIGINT/SIGTERM; the exit code.

    Without ``data_dir`` the broker's data lives in a temporary directory removed on exit;
    with it, topics and offsets survive restarts. The signals are ``shutdown``'s (the
    command's, :mod:`hl7gw.shutdown`), else handled here until this returns; a stop, even
    one mid-start, SIGTERMs the broker (its controlled shutdown) and SIGKILLs it if it is
    still running ``STOP_S`` seconds later.
    """
    scratch = None if data_dir is not None else Path(tempfile.mkdtemp(prefix="hl7gw-kafka-"))
    broker = LocalKafka(port=port, data_dir=data_dir or scratch or Path(),
                        cache_dir=default_cache_dir(), log=_to_stderr)
    own = Shutdown("hl7gw dev kafka", STOP_S + 1.0) if shutdown is None else None
    with own or contextlib.nullcontext():
        stop = own or shutdown
        assert stop is not None
        try:
            with stop.interruptible():
                began = time.monotonic()
                bootstrap = broker.start()
                print(f"Kafka ready at {bootstrap} (started in "
                      f"{time.monotonic() - began:.1f}s)", flush=True)
                code = broker.wait()
            _to_stderr(f"Kafka exited unexpectedly (code {code}); see {broker.log_path}")
            return 1
        except Interrupted:
            _to_stderr("stopping Kafka")
            return 0
        except GatewayError as exc:
            _to_stderr(f"error: {exc}")
            return 1
        finally:
            broker.stop(STOP_S)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)


def _to_stderr(message: str) -> None:
    """Progress and errors for the CLI go to stderr; stdout carries only the ready line."""
    print(f"hl7gw dev kafka: {message}", file=sys.stderr, flush=True)
