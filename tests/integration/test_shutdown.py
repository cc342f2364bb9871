"""Every long-running command stops on SIGINT and on SIGTERM, under load, and always ends.

Each command runs as a user runs it: a subprocess in its own session, real sockets, the
shared broker (``dev up`` once with a broker of its own, as ``make run`` starts it). SIGINT
goes to the whole process group, as a terminal's Ctrl-C does (so it reaches the gateway's
mapping worker too); SIGTERM to the process, as ``kill`` and Kubernetes send it. Checked:
the time from the signal to the exit, the exit code, the ports bound again, nothing lost
(ACKed messages in the spool and published after a restart; the bridge's committed offsets
cover delivered events only), no traceback; and a second signal during the drain (held
open by a frame or request half sent) ends the process at once.

Seen before: ``hl7gw dev up`` ignored Ctrl-C (uvicorn took the signal), the mapping worker
printed a ``KeyboardInterrupt`` traceback, and ``hl7gw dev kafka`` started with SIGINT
ignored (a background job of a non-interactive shell) never stopped on SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI

from connectors.settings import KafkaSettings
from gateway.ack import ack_code_of
from gateway.dev.kafka import default_cache_dir, metadata_ready
from gateway.mllp.client import MllpClient, split_messages
from gateway.mllp.framing import encode_frame
from tests.integration.conftest import free_port, read_records
from tests.integration.test_bridge import Target, fhir_event, produce, serve  # noqa: F401
from tests.support import sample_path, with_control_id

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

HL7GW = str(Path(sys.executable).with_name("hl7gw"))
REPO = Path(__file__).resolve().parents[2]
SAMPLE = split_messages(sample_path("adt_a01").read_bytes())[0]
ACCEPTED = ("AA", "CA")
STOP_S = 10.0  # the default drain deadline (8 s) + hl7gw.shutdown's exit margin (2 s)
SLACK_S = 8.0  # a loaded machine's scheduling, on top; a hang still fails
AT_ONCE_S = 4.0  # a second signal: exit "at once", generously
START_S = 120.0  # a start on a machine at load average 6 (a broker: JVM start)
SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]


# a command in a subprocess --------------------------------------------------------------

class Command:
    """``hl7gw ARGS`` in its own session, stdout and stderr into files."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None,
                 cwd: Path = REPO, name: str = "cmd", program: str = HL7GW) -> None:
        self.out = tmp / f"{name}.out"
        self.err = tmp / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen([program, *args], stdout=out, stderr=err, cwd=cwd,
                                            env={**os.environ, **(env or {})},
                                            start_new_session=True)
        self.signalled_at = 0.0

    def send(self, sig: signal.Signals) -> None:
        """SIGINT to the process group (a terminal's Ctrl-C), SIGTERM to the process."""
        self.signalled_at = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    async def exited(self, within: float) -> tuple[int, float]:
        """(exit code, seconds since the last signal); fails if still running after ``within``."""
        deadline = self.signalled_at + within
        while self.process.poll() is None:
            assert time.monotonic() < deadline, (
                f"still running {within:.0f}s after the signal; stderr:\n{self.stderr()[-3000:]}")
            await asyncio.sleep(0.05)
        return self.process.returncode, time.monotonic() - self.signalled_at

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    async def wait_for_output(self, pattern: str, within: float = START_S) -> re.Match[str]:
        deadline = time.monotonic() + within
        while True:
            found = re.search(pattern, self.stdout() + self.stderr())
            if found:
                return found
            assert self.process.poll() is None, f"exited early:\n{self.stderr()[-3000:]}"
            assert time.monotonic() < deadline, f"no {pattern!r} in {within:.0f}s"
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def commands() -> Iterator[list[Command]]:
    """Commands started by a test, killed (whole group) if a test leaves one running."""
    started: list[Command] = []
    yield started
    for command in started:
        command.kill()


def assert_clean_stop(command: Command, code: int, took: float,
                      sig: signal.Signals, ports: list[int]) -> None:
    assert code == 0, f"exit {code}; stderr:\n{command.stderr()[-3000:]}"
    assert took < STOP_S + SLACK_S, f"took {took:.1f}s"
    assert f"{sig.name}: stopping" in command.stderr()
    assert "Traceback" not in command.stderr(), command.stderr()[-5000:]
    for port in ports:
        assert_port_free(port)


def assert_port_free(port: int) -> None:
    """Bind the port again, as a restarted server would (SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


async def wait_port(port: int, within: float = START_S) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


# MLLP load -------------------------------------------------------------------------------

@dataclass
class MllpLoad:
    """Senders streaming messages until the listener goes away; what was ACKed."""

    port: int
    acked: list[str] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, senders: int = 3) -> None:
        self.tasks = [asyncio.create_task(self._send(n)) for n in range(senders)]

    async def _send(self, sender: int) -> None:
        n = 0
        with contextlib.suppress(Exception):
            async with MllpClient("127.0.0.1", self.port, timeout=30) as client:
                while True:
                    control_id = f"S{sender}-{n}"
                    ack = (await client.send(with_control_id(SAMPLE, control_id))).decode()
                    if ack_code_of(ack) in ACCEPTED:
                        self.acked.append(control_id)
                    n += 1

    async def flowing(self, at_least: int = 100, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while len(self.acked) < at_least:
            assert time.monotonic() < deadline, f"only {len(self.acked)} ACKs"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def half_frame(port: int, control_id: str
                     ) -> AsyncIterator[Callable[[], Awaitable[bytes]]]:
    """A connection with half a frame sent; ``finish()`` sends the rest, returns the ACK."""
    frame = encode_frame(with_control_id(SAMPLE, control_id))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame[: len(frame) // 2])
    await writer.drain()
    await asyncio.sleep(0.5)  # read by the listener: in flight (unread bytes are not)

    async def finish() -> bytes:
        writer.write(frame[len(frame) // 2:])
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 30)

    try:
        yield finish
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def spooled(spool: Path) -> dict[str, str]:
    """control id -> status of every message in the spool file."""
    with contextlib.closing(sqlite3.connect(spool)) as db:
        return dict(db.execute("SELECT control_id, status FROM messages"))


# hl7gw serve ---------------------------------------------------------------------------

def gateway_config(tmp: Path, bootstrap: str, topic: str, *, mllp: int, http: int,
                   name: str = "gw.yaml") -> Path:
    path = tmp / name
    path.write_text(f"""\
source: urn:hl7gw:shutdown-test
listeners:
  - name: adt
    port: {mllp}
http:
  port: {http}
spool:
  path: {tmp / "spool.db"}
mapping_workers: 1
kafka:
  bootstrap_servers: {bootstrap}
  topic: {topic}
""")
    return path


@pytest.mark.parametrize("sig", SIGNALS)
async def test_serve_stops_under_load_keeps_every_ack_and_publishes_it_after_restart(
        sig: signal.Signals, tmp_path: Path, kafka_bootstrap: str, kafka_topic: str,
        commands: list[Command]) -> None:
    mllp, http = free_port(), free_port()
    config = gateway_config(tmp_path, kafka_bootstrap, kafka_topic, mllp=mllp, http=http)
    gateway = Command(tmp_path, "serve", "--config", str(config), "--log-level", "warning")
    commands.append(gateway)
    await wait_port(mllp)
    load = MllpLoad(mllp)
    load.start()
    try:
        await load.flowing()
        gateway.send(sig)
        code, took = await gateway.exited(STOP_S + SLACK_S)
    finally:
        await load.stop()
    print(f"hl7gw serve, {sig.name} under load: exit {code} after {took:.2f}s, "
          f"{len(load.acked)} ACKed")
    assert_clean_stop(gateway, code, took, sig, [mllp, http])
    in_spool = spooled(tmp_path / "spool.db")
    assert set(load.acked) <= set(in_spool), set(load.acked) - set(in_spool)
    # The next start publishes what the stop left pending; nothing ACKed is missing.
    again = Command(tmp_path, "serve", "--config", str(config), "--log-level", "warning",
                    name="again")
    commands.append(again)
    # Up before the SIGTERM below: when the first stop published everything, nothing is
    # pending and a signal sent while it still imports would meet the default action.
    await wait_port(mllp)
    deadline = time.monotonic() + START_S
    while any(status == "pending" for status in spooled(tmp_path / "spool.db").values()):
        assert again.process.poll() is None, again.stderr()[-3000:]
        assert time.monotonic() < deadline, "pending rows not published after the restart"
        await asyncio.sleep(0.2)
    again.send(signal.SIGTERM)
    code, _ = await again.exited(STOP_S + SLACK_S)
    assert code == 0
    records = await asyncio.wait_for(read_records(kafka_bootstrap, kafka_topic,
                                                  len(in_spool)), 60)
    published = {dict(r.headers)["ce_id"].decode() for r in records}
    with contextlib.closing(sqlite3.connect(tmp_path / "spool.db")) as db:
        ids = dict(db.execute("SELECT control_id, event_id FROM messages"))
    assert {ids[c] for c in load.acked} <= published


@pytest.mark.parametrize("sig", SIGNALS)
async def test_serve_answers_the_frame_in_flight_and_a_second_signal_exits_at_once(
        sig: signal.Signals, tmp_path: Path, kafka_bootstrap: str, kafka_topic: str,
        commands: list[Command]) -> None:
    mllp, http = free_port(), free_port()
    config = gateway_config(tmp_path, kafka_bootstrap, kafka_topic, mllp=mllp, http=http)
    gateway = Command(tmp_path, "serve", "--config", str(config), "--log-level", "warning")
    commands.append(gateway)
    await wait_port(mllp)
    async with half_frame(mllp, "IN-FLIGHT") as finish, half_frame(mllp, "NEVER") as _:
        gateway.send(sig)
        await gateway.wait_for_output(f"{sig.name}: stopping", within=SLACK_S)
        # The frame in flight is finished and answered after the signal ...
        assert ack_code_of((await finish()).decode("latin-1")) in ACCEPTED
        # Durable in the journal before the ACK; in SQLite (what this reads) right after.
        deadline = time.monotonic() + SLACK_S
        while spooled(tmp_path / "spool.db").get("IN-FLIGHT") is None:
            assert time.monotonic() < deadline, "the ACKed frame never reached the spool"
            await asyncio.sleep(0.05)
        # ... while the other half frame holds the drain open: a second signal ends it.
        await asyncio.sleep(1.0)
        assert gateway.process.poll() is None, "the drain did not wait for the frame in flight"
        gateway.send(sig)
        code, took = await gateway.exited(AT_ONCE_S)
    print(f"hl7gw serve, second {sig.name}: exit {code} after {took:.2f}s")
    assert code == 128 + sig
    assert f"{sig.name} again: exiting now" in gateway.stderr()
    assert "Traceback" not in gateway.stderr()
    assert_port_free(mllp)
    assert_port_free(http)


# hl7gw bridge --------------------------------------------------------------------------

def bridge_config(tmp: Path, bootstrap: str, topic: str, target: str, probes: int) -> Path:
    path = tmp / "bridge.yaml"
    path.write_text(f"""\
kafka:
  bootstrap_servers: {bootstrap}
  topic: {topic}
bridge:
  topic: {topic}
  group_id: g-{topic}
  target_url: {target}
  backoff_initial_s: 0.05
  backoff_max_s: 0.2
  http:
    port: {probes}
""")
    return path


async def committed(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    """partition -> the group's committed offset (partitions it never committed left out)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()
            if tp.topic == topic and meta.offset >= 0}


async def delivered_only(bootstrap: str, topic: str, delivered: set[str]) -> dict[int, int]:
    """Every record below a committed offset was delivered; the committed offsets."""
    offsets = await committed(bootstrap, topic, f"g-{topic}")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p)
                      for p in consumer.partitions_for_topic(topic) or set()]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    records = await asyncio.wait_for(read_records(bootstrap, topic, sum(ends.values())), 60)
    for record in records:
        if record.offset < offsets.get(record.partition, 0):
            ce_id = dict(record.headers)["ce_id"].decode()
            assert ce_id in delivered, f"offset past {ce_id}, which was never delivered"
    return offsets


@pytest.mark.parametrize("sig", SIGNALS)
async def test_bridge_stops_under_load_and_commits_only_what_it_delivered(
        sig: signal.Signals, tmp_path: Path, kafka_bootstrap: str, kafka_topic: str,
        serve: Callable[[FastAPI], str], commands: list[Command]) -> None:  # noqa: F811
    target = Target(delay=0.01)
    probes = free_port()
    config = bridge_config(tmp_path, kafka_bootstrap, kafka_topic, serve(target.app), probes)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    bridge = Command(tmp_path, "bridge", "--config", str(config), "--log-level", "warning")
    commands.append(bridge)
    produced = 0

    async def keep_producing() -> None:
        nonlocal produced
        while True:
            await produce(kafka, kafka_topic, [fhir_event(f"p{k}", produced + k)
                                               for k in range(10)])
            produced += 10
            await asyncio.sleep(0.05)

    producer = asyncio.create_task(keep_producing())
    try:
        deadline = time.monotonic() + START_S
        while len(target.delivered) < 30:  # events flowing end to end
            assert bridge.process.poll() is None, bridge.stderr()[-3000:]
            assert time.monotonic() < deadline, "the bridge delivered nothing"
            await asyncio.sleep(0.05)
        bridge.send(sig)
        code, took = await bridge.exited(STOP_S + SLACK_S)
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
    print(f"hl7gw bridge, {sig.name} under load: exit {code} after {took:.2f}s, "
          f"{len(target.delivered)} delivered of {produced}")
    assert_clean_stop(bridge, code, took, sig, [probes])
    offsets = await delivered_only(kafka_bootstrap, kafka_topic, set(target.delivered))
    assert sum(offsets.values()) > 0  # it did commit what it delivered


@pytest.mark.parametrize("sig", SIGNALS)
async def test_bridge_second_signal_exits_at_once_without_committing_the_event_in_flight(
        sig: signal.Signals, tmp_path: Path, kafka_bootstrap: str, kafka_topic: str,
        serve: Callable[[FastAPI], str], commands: list[Command]) -> None:  # noqa: F811
    target = Target()
    probes = free_port()
    config = bridge_config(tmp_path, kafka_bootstrap, kafka_topic, serve(target.app), probes)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    bridge = Command(tmp_path, "bridge", "--config", str(config), "--log-level", "warning")
    commands.append(bridge)
    await produce(kafka, kafka_topic, [fhir_event("p-a", 0)])
    deadline = time.monotonic() + START_S
    while not target.delivered:
        assert time.monotonic() < deadline, bridge.stderr()[-3000:]
        await asyncio.sleep(0.05)
    target.hold.clear()  # the next delivery hangs in the function
    await produce(kafka, kafka_topic, [fhir_event("p-a", 1)])
    while not target.attempts["p-a-001"]:
        assert time.monotonic() < deadline, bridge.stderr()[-3000:]
        await asyncio.sleep(0.05)
    try:
        bridge.send(sig)
        await bridge.wait_for_output(f"{sig.name}: stopping", within=SLACK_S)
        await asyncio.sleep(1.0)
        assert bridge.process.poll() is None, "the drain did not wait for the event in flight"
        bridge.send(sig)
        code, took = await bridge.exited(AT_ONCE_S)
    finally:
        target.hold.set()
    print(f"hl7gw bridge, second {sig.name}: exit {code} after {took:.2f}s")
    assert code == 128 + sig
    assert "Traceback" not in bridge.stderr()
    assert_port_free(probes)
    offsets = await delivered_only(kafka_bootstrap, kafka_topic, {"p-a-000"})
    assert sum(offsets.values()) == 1  # the first event; the one in flight is not committed


# hl7gw function serve --------------------------------------------------------------------

def event_request(n: int) -> tuple[dict[str, str], bytes]:
    event = fhir_event("p-f", n)
    return {**event.http_headers(), "idempotency-key": event.id}, event.data


@pytest.mark.parametrize("sig", SIGNALS)
async def test_function_serve_stops_under_load_answering_what_it_accepted(
        sig: signal.Signals, tmp_path: Path, commands: list[Command]) -> None:
    port = free_port()
    function = Command(tmp_path, "function", "serve", "--port", str(port))
    commands.append(function)
    await wait_port(port)
    answered: list[int] = []
    url = f"http://127.0.0.1:{port}/events"

    async def post_forever(client: httpx.AsyncClient, worker: int) -> None:
        n = 0
        while True:
            headers, body = event_request(worker * 100_000 + n)
            try:
                response = await client.post(url, headers=headers, content=body)
            except httpx.TransportError:
                return  # refused or closed: the bridge would try again
            answered.append(response.status_code)
            n += 1

    async with httpx.AsyncClient(timeout=30) as client:
        posters = [asyncio.create_task(post_forever(client, w)) for w in range(4)]
        deadline = time.monotonic() + 60
        while len(answered) < 50:
            assert time.monotonic() < deadline, function.stderr()[-3000:]
            await asyncio.sleep(0.05)
        function.send(sig)
        code, took = await function.exited(STOP_S + SLACK_S)
        await asyncio.wait_for(asyncio.gather(*posters, return_exceptions=True), 30)
    print(f"hl7gw function serve, {sig.name} under load: exit {code} after {took:.2f}s, "
          f"{len(answered)} answered")
    assert_clean_stop(function, code, took, sig, [port])
    assert set(answered) <= {200, 201, 202}, answered  # a request was answered, or refused


@pytest.mark.parametrize("sig", SIGNALS)
async def test_function_serve_answers_the_request_in_flight_and_a_second_signal_exits(
        sig: signal.Signals, tmp_path: Path, commands: list[Command]) -> None:
    port = free_port()
    function = Command(tmp_path, "function", "serve", "--port", str(port))
    commands.append(function)
    await wait_port(port)

    async def half_request(n: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        headers, body = event_request(n)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST /events HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n"
                     f"{head}\r\n".encode() + body[:10])
        await writer.drain()
        return reader, writer, body[10:]

    reader, writer, rest = await half_request(1)
    _, held, _ = await half_request(2)
    await asyncio.sleep(0.5)  # both requests reached the app
    function.send(sig)
    await function.wait_for_output(f"{sig.name}: stopping", within=SLACK_S)
    writer.write(rest)
    await writer.drain()
    status = (await asyncio.wait_for(reader.readline(), 30)).decode()
    assert status.split()[1] in ("200", "201", "202"), status  # answered after the signal
    await asyncio.sleep(1.0)
    assert function.process.poll() is None, "the drain did not wait for the request in flight"
    function.send(sig)
    code, took = await function.exited(AT_ONCE_S)
    for w in (writer, held):
        w.close()
    print(f"hl7gw function serve, second {sig.name}: exit {code} after {took:.2f}s")
    assert code == 128 + sig
    assert "Traceback" not in function.stderr()
    assert_port_free(port)


# hl7gw dev up and dev kafka ----------------------------------------------------------------

def dev_up_config(tmp: Path, topic: str, *, mllp: int, http: int, function: int) -> Path:
    path = tmp / "dev.yaml"
    path.write_text(f"""\
source: urn:hl7gw:shutdown-test
listeners:
  - name: adt
    port: {mllp}
http:
  port: {http}
profiles:
  dir: {REPO / "samples" / "profiles"}
kafka:
  bootstrap_servers: 127.0.0.1:9
  topic: {topic}
bridge:
  topic: {topic}
  group_id: g-{topic}
  target_url: http://127.0.0.1:{function}/events
function:
  port: {function}
""")
    return path


def broker_processes(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` (the broker's data dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes():
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if stat[0] != "Z":
                        found.append(int(entry.name))
    return found


@pytest.mark.parametrize("sig,own_broker", [
    pytest.param(signal.SIGINT, True, id="SIGINT-own-broker"),  # make run, Ctrl-C
    pytest.param(signal.SIGTERM, False, id="SIGTERM-shared-broker"),
])
async def test_dev_up_stops_under_load_with_its_broker(
        sig: signal.Signals, own_broker: bool, tmp_path: Path, kafka_bootstrap: str,
        kafka_topic: str, commands: list[Command]) -> None:
    mllp, http, function = free_port(), free_port(), free_port()
    config = dev_up_config(tmp_path, kafka_topic, mllp=mllp, http=http, function=function)
    env = {"HL7GW_CACHE_DIR": str(default_cache_dir())}
    if own_broker:
        env["KAFKA_BOOTSTRAP_SERVERS"] = ""
    else:
        env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    up = Command(tmp_path, "dev", "up", "--config", str(config), "--samples",
                 str(REPO / "samples"), env=env, cwd=tmp_path)
    commands.append(up)
    broker = (await up.wait_for_output(r"Kafka broker: 127\.0\.0\.1:(\d+)")).group(1)
    await up.wait_for_output(r"running; send more")
    load = MllpLoad(mllp)
    load.start()
    try:
        await load.flowing()
        up.send(sig)
        code, took = await up.exited(STOP_S + SLACK_S)
    finally:
        await load.stop()
    print(f"hl7gw dev up ({'own' if own_broker else 'shared'} broker), {sig.name} under "
          f"load: exit {code} after {took:.2f}s, {len(load.acked)} ACKed")
    assert_clean_stop(up, code, took, sig, [mllp, http, function])
    in_spool = spooled(tmp_path / "var" / "dev-up" / "spool.db")
    assert set(load.acked) <= set(in_spool), set(load.acked) - set(in_spool)
    if own_broker:
        assert not broker_processes(str(tmp_path / "var" / "dev-up" / "kafka"))
        assert not metadata_ready("127.0.0.1", int(broker))
        assert_port_free(int(broker))
    else:
        assert metadata_ready("127.0.0.1", int(broker))  # a broker it did not start: kept


async def test_dev_up_second_ctrl_c_exits_at_once(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str,
        commands: list[Command]) -> None:
    mllp, http, function = free_port(), free_port(), free_port()
    config = dev_up_config(tmp_path, kafka_topic, mllp=mllp, http=http, function=function)
    up = Command(tmp_path, "dev", "up", "--config", str(config), "--samples",
                 str(REPO / "samples"), env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
                 cwd=tmp_path)
    commands.append(up)
    await up.wait_for_output(r"running; send more")
    async with half_frame(mllp, "HELD"):
        up.send(signal.SIGINT)
        await up.wait_for_output("SIGINT: stopping", within=SLACK_S)
        await asyncio.sleep(1.0)
        assert up.process.poll() is None, "the drain did not wait for the frame in flight"
        up.send(signal.SIGINT)
        code, took = await up.exited(AT_ONCE_S)
    print(f"hl7gw dev up, second SIGINT: exit {code} after {took:.2f}s")
    assert code == 130
    assert "Traceback" not in up.stderr()
    for port in (mllp, http, function):
        assert_port_free(port)


@pytest.mark.parametrize("sig", SIGNALS)
async def test_dev_kafka_stops_even_when_started_with_sigint_ignored(
        sig: signal.Signals, tmp_path: Path, commands: list[Command]) -> None:
    """A background job of a non-interactive shell inherits SIGINT ignored (``cmd &``)."""
    port = free_port()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited across exec
    try:
        kafka = Command(tmp_path, "dev", "kafka", "--port", str(port), "--data",
                        str(tmp_path / "kafka"),
                        env={"HL7GW_CACHE_DIR": str(default_cache_dir())})
    finally:
        signal.signal(signal.SIGINT, previous)
    commands.append(kafka)
    await kafka.wait_for_output(rf"Kafka ready at 127\.0\.0\.1:{port}")
    kafka.send(sig)
    code, took = await kafka.exited(STOP_S + SLACK_S)
    print(f"hl7gw dev kafka, {sig.name}: exit {code} after {took:.2f}s")
    assert_clean_stop(kafka, code, took, sig, [port])
    assert "stopping Kafka" in kafka.stderr()
    assert not broker_processes(str(tmp_path / "kafka"))


# the one helper every command uses -----------------------------------------------------------

STUCK = """\
import asyncio, sys, threading, time
from hl7gw.shutdown import serve_until_stopped

async def main(shutdown):
    print("ready", flush=True)
    await shutdown.wait()
    if sys.argv[1] == "stop-never-ends":
        await asyncio.sleep(3600)
    else:  # a thread that is not a daemon holds up the interpreter's exit
        threading.Thread(target=time.sleep, args=(3600,)).start()

serve_until_stopped("hl7gw test", main, drain_s=1.0)
"""


@pytest.mark.parametrize("case,code,message", [
    ("stop-never-ends", 143, "hl7gw test: not stopped 3 s after SIGTERM; exiting now"),
    ("exit-held-up", 143, "hl7gw test: interpreter exit held up; exiting now"),
])
async def test_a_process_always_ends_whatever_its_stop_or_its_threads_do(
        case: str, code: int, message: str, tmp_path: Path, commands: list[Command]) -> None:
    program = Command(tmp_path, "-c", STUCK, case, program=sys.executable)
    commands.append(program)
    await program.wait_for_output("ready", within=60)
    program.send(signal.SIGTERM)
    exit_code, took = await program.exited(1.0 + 2.0 + SLACK_S)  # drain_s + exit margin
    assert (exit_code, program.stderr().splitlines()[-1]) == (code, message)
    assert took >= 1.0 if case == "stop-never-ends" else True
    assert "Traceback" not in program.stderr()
