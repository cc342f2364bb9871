"""``hl7gw dev up``: the whole pipeline on one machine, for a demo or a smoke test.

Starts a real Kafka broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` names one), the sample
function, the gateway and the bridge, sends every ``*.hl7`` in the samples folder over
MLLP, and shows what reached Kafka and the function. With an ``outbound:`` section the
function also runs the NEWS2 processor, a local EHR (``gateway.dev.ehr``) listens on each
loopback destination's port, and what came back to it is shown with its ACK: the vitals
sample's NEWS2 score, as an ORU^R01. Each run starts from an empty
workspace (``var/dev-up``) so the samples are new messages every time.

Stopping (Ctrl-C or SIGTERM, through :mod:`hl7gw.shutdown`): the gateway and the bridge
stop together within ``drain_timeout_s`` less :data:`BROKER_STOP_S` (the gateway answers
the frames in flight; what it ACKed is in ``var/dev-up/spool.db``; the bridge commits only
delivered events), then the function, then the broker it started (SIGTERM, SIGKILL after
:data:`BROKER_STOP_S`: its data is thrown away at the next start anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from connectors.bridge import Bridge
from connectors.cloud import create_app as create_function_app
from connectors.cloud.processor import MemoryStore, Processor, ProcessorChain
from connectors.settings import BridgeSettings
from gateway.ack import ack_code_of
from gateway.config import ConsoleUser, GatewaySettings
from gateway.dev.ehr import LocalEhr
from gateway.dev.kafka import LocalKafka, default_cache_dir
from gateway.errors import GatewayError, ListenError
from gateway.logs import configure_logging
from gateway.mllp.client import MllpClient, read_message_files
from gateway.service import GatewayService
from hl7gw.http_server import QuietServer, stop_server
from hl7gw.shutdown import Interrupted, Shutdown

WORKSPACE = Path("var/dev-up")
BROKER_STOP_S = 2.0  # of the drain deadline, for the broker dev up started
FUNCTION_STOP_S = 1.0  # of the drain deadline, for the function's requests in flight


def say(text: str = "") -> None:
    """Progress for the person at the terminal."""
    print(text, flush=True)


def run_dev_up(settings: GatewaySettings, samples: Path, shutdown: Shutdown, *,
               once: bool = False) -> int:
    """Run everything until Ctrl-C/SIGTERM (or, with ``once``, until the samples arrived)."""
    files = sorted(samples.glob("*.hl7"))
    if not files:
        raise GatewayError(f"no *.hl7 files in {samples}")
    configure_logging("warning", json=False)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    # A new broker has no group coordinator for a second; the bridge retries. Not news.
    logging.getLogger("aiokafka.consumer.group_coordinator").setLevel(logging.CRITICAL)
    shutil.rmtree(WORKSPACE, ignore_errors=True)
    WORKSPACE.mkdir(parents=True)
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    try:
        if not bootstrap:
            say("starting Kafka (the first run fetches the jars with Maven) ...")
            began = time.monotonic()
            with shutdown.interruptible():
                broker = LocalKafka(data_dir=WORKSPACE / "kafka", cache_dir=default_cache_dir())
                bootstrap = broker.start()
            say(f"Kafka ready at {bootstrap} in {time.monotonic() - began:.1f}s")
        settings, token = _local(settings, bootstrap)
        _make_key(settings)
        whose = "started for this run" if broker else "KAFKA_BOOTSTRAP_SERVERS"
        say(f"Kafka broker: {bootstrap} ({whose}); spool: {settings.spool.path}")
        return shutdown.asyncio_run(
            lambda stop: _pipeline(settings, files, stop, once=once, token=token))
    except Interrupted:
        return 0
    finally:
        if shutdown.requested:
            say("\nstopped")
        if broker is not None:
            broker.stop(BROKER_STOP_S)


def _local(settings: GatewaySettings, bootstrap: str) -> tuple[GatewaySettings, str | None]:
    """The settings for this run's workspace, and a console token made for this run only.

    With no console users configured, an operator is added for the run, so the demo's
    console can be opened at once; its token is printed, never stored (only its hash).
    """
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": bootstrap})
    spool = settings.spool.model_copy(update={"path": WORKSPACE / "spool.db"})
    fn = settings.function
    bridge = settings.bridge or BridgeSettings(
        topic=kafka.topic, group_id="hl7gw-dev-bridge",
        target_url=f"http://{fn.host}:{fn.port}/events")
    # The bridge stops with the gateway, within the share of the deadline they have.
    grace = max(settings.drain_timeout_s - BROKER_STOP_S - FUNCTION_STOP_S, 0.5)
    bridge = bridge.model_copy(update={
        "drain_timeout_s": min(bridge.drain_timeout_s, grace)})
    console = settings.console.model_copy(update={"audit_path": WORKSPACE / "audit.jsonl"})
    token = None
    if console.enabled and not console.users:
        token = secrets.token_urlsafe(24)
        digest = hashlib.sha256(token.encode()).hexdigest()
        console = console.model_copy(update={"users": [
            ConsoleUser(name="dev-up", role="operator", token_sha256=digest)]})
    encryption = settings.encryption
    if encryption is not None and encryption.provider == "file":
        # A key of the run's own in the workspace (made by _make_key once the workspace is
        # emptied): the demo's spool is sealed as a site's would be, nothing outlives it.
        encryption = encryption.model_copy(update={"key_file": WORKSPACE / "keys.json"})
    return settings.model_copy(update={"kafka": kafka, "spool": spool, "bridge": bridge,
                                       "console": console, "encryption": encryption}), token


def _make_key(settings: GatewaySettings) -> None:
    """The run's spool key (docs/encryption.md), in the emptied workspace."""
    if settings.encryption is not None and settings.encryption.provider == "file":
        from gateway.keys.manage import init_keys

        init_keys(settings.encryption)


async def _create_topics(settings: GatewaySettings) -> None:
    """Create the event and dead-letter topics up front (3 partitions), quietly."""
    topics = [settings.kafka.topic]
    if settings.bridge is not None and settings.bridge.dlq_topic:
        topics.append(settings.bridge.dlq_topic)
    if settings.outbound is not None:
        topics.append(settings.outbound.topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(t, num_partitions=3, replication_factor=1)
               for t in topics if t not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def _pipeline(settings: GatewaySettings, files: list[Path], shutdown: Shutdown, *,
                    once: bool, token: str | None = None) -> int:
    await _create_topics(settings)
    fn = settings.function
    function_server = QuietServer(uvicorn.Config(
        create_function_app(_processor(settings)), host=fn.host, port=fn.port,
        log_config=None, access_log=False))
    function_task = asyncio.create_task(function_server.serve())
    while not function_server.started:
        if function_task.done():
            function_task.result()
        await asyncio.sleep(0.02)
    say(f"function listening on http://{fn.host}:{fn.port}/events")
    assert settings.bridge is not None
    bridge = Bridge(settings.bridge, settings.kafka)
    bridge_task = asyncio.create_task(bridge.run())
    gateway = GatewayService(settings)
    stop = asyncio.create_task(shutdown.wait())
    show: asyncio.Task[int] | None = None
    ehr = await _start_local_ehr(settings)
    try:
        await gateway.start()
        show = asyncio.create_task(_show_the_samples(settings, gateway, files, once=once,
                                                     token=token, ehr=ehr))
        await asyncio.wait({show, stop}, return_when=asyncio.FIRST_COMPLETED)
        if show.done():
            code = show.result()
            if once:
                return code
            await stop
        return 0
    finally:
        for task in (show, stop):
            if task is not None:
                task.cancel()
        await _stop(settings, gateway, bridge, bridge_task, function_server, function_task)
        if ehr is not None:
            await ehr[0].stop(0.5)


def _processor(settings: GatewaySettings) -> Processor:
    """The sample store (``GET /events``), and NEWS2 when results go back to an EHR."""
    if settings.outbound is None:
        return MemoryStore(settings.function.max_events)
    from connectors.cloud.news2_processor import News2Processor

    return ProcessorChain(MemoryStore(settings.function.max_events), News2Processor())


class _Printed:
    """The local EHR's printout, kept to be shown after the other sections."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        self.lines.extend(text.splitlines())


async def _start_local_ehr(settings: GatewaySettings) -> tuple[LocalEhr, _Printed] | None:
    """A local EHR on the first outbound destination that is on this machine."""
    if settings.outbound is None:
        return None
    local = [d for d in settings.outbound.destinations
             if d.host in ("127.0.0.1", "localhost", "::1")]
    if not local:
        return None
    printed = _Printed()
    ehr = LocalEhr(local[0].host, local[0].port, out=printed)
    try:
        await ehr.start()
    except ListenError:
        say(f"destination {local[0].name!r}: port {local[0].port} is taken; results go to "
            "whatever listens there")
        return None
    say(f"local EHR (destination {local[0].name!r}) listening on "
        f"{local[0].host}:{ehr.port}")
    return ehr, printed


async def _show_the_samples(settings: GatewaySettings, gateway: GatewayService,
                            files: list[Path], *, once: bool, token: str | None,
                            ehr: tuple[LocalEhr, _Printed] | None = None) -> int:
    """Send the samples, show what reached Kafka and the function; 1 if some did not."""
    fn = settings.function
    port = gateway.listeners[0].port
    base = f"http://{settings.http.host}:{gateway.http_port}"
    say(f"gateway: MLLP 127.0.0.1:{port}, health {base}/readyz, metrics /metrics")
    if settings.console.enabled:
        login = f" (sign in with token {token}, made for this run)" if token else ""
        say(f"console: {base}/console{login}")
    sent = await _send_samples(port, files)
    events = await _wait_for_events(f"http://{fn.host}:{fn.port}/events", sent)
    await _show_kafka(settings, sent)
    _show_function(events)
    if ehr is not None:
        await _show_results(*ehr)
    if not once:
        say("\nrunning; send more with: hl7gw send --port "
            f"{port} FILE...   (Ctrl-C to stop)")
    return 0 if len(events) >= sent else 1


async def _stop(settings: GatewaySettings, gateway: GatewayService, bridge: Bridge,
                bridge_task: asyncio.Task[None], function_server: uvicorn.Server,
                function_task: asyncio.Task[None]) -> None:
    """Gateway and bridge together, then the function: within the drain deadline."""
    grace = max(settings.drain_timeout_s - BROKER_STOP_S - FUNCTION_STOP_S, 0.5)
    bridge.request_stop()  # its records in flight get bridge.drain_timeout_s (see _local)
    await asyncio.gather(gateway.stop(grace), asyncio.wait({bridge_task}, timeout=grace))
    if not bridge_task.done():
        bridge_task.cancel()  # its records in flight stay uncommitted
        await asyncio.wait({bridge_task}, timeout=FUNCTION_STOP_S)
    elif not bridge_task.cancelled() and bridge_task.exception() is not None:
        say(f"the bridge had stopped: {bridge_task.exception()}")
    await stop_server(function_server, function_task, FUNCTION_STOP_S)


async def _send_samples(port: int, files: list[Path]) -> int:
    say("\nsending samples over MLLP:")
    accepted = 0
    async with MllpClient("127.0.0.1", port, timeout=30) as client:
        for path, message in read_message_files(files):
            code = ack_code_of((await client.send(message)).decode("latin-1"))
            accepted += code in ("AA", "CA")
            say(f"  {code}  {path}")
    return accepted


async def _wait_for_events(url: str, expected: int, wait_s: float = 60) -> list[Any]:
    deadline = time.monotonic() + wait_s
    async with httpx.AsyncClient() as client:
        while True:
            events: list[Any] = (await client.get(url)).json()
            if len(events) >= expected or time.monotonic() > deadline:
                return events
            await asyncio.sleep(0.2)


async def _show_kafka(settings: GatewaySettings, expected: int) -> None:
    say(f"\nrecords on Kafka topic {settings.kafka.topic!r}:")
    consumer = AIOKafkaConsumer(settings.kafka.topic,
                                bootstrap_servers=settings.kafka.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    try:
        records: list[Any] = []
        deadline = time.monotonic() + 10
        while len(records) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            records.extend(r for rs in batches.values() for r in rs)
        for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
            headers = {k: v.decode() for k, v in rec.headers}
            say(f"  p{rec.partition}@{rec.offset}  key={(rec.key or b'').decode()[:16]}…"
                f"  {headers.get('ce_type')}  ce_id={headers.get('ce_id')}"
                f"  {len(rec.value or b'')} bytes")
        if not records:
            say("  (none)")
    finally:
        await consumer.stop()


async def _show_results(ehr: LocalEhr, printed: _Printed, wait_s: float = 30) -> None:
    """What came back to the local EHR (NEWS2 for the vitals sample), with its ACK."""
    with contextlib.suppress(TimeoutError):
        await ehr.wait_for(1, wait_s)
    await asyncio.sleep(0.5)  # the ACK's line follows the message's
    say(f"\nresults back at the local EHR ({len(ehr.received)}):")
    for line in printed.lines:
        say(f"  {line}")
    if not ehr.received:
        say("  (none; a result comes back for the vitals sample: samples/oru_r01_vitals.hl7)")


def _show_function(events: list[Any]) -> None:
    say(f"\nevents received by the function ({len(events)}):")
    for ev in events:
        kinds = ", ".join(ev.get("resource_types", []))
        say(f"  {ev.get('type')}  id={ev.get('id')}  [{kinds}]")
    if not events:
        say("  (none yet; check the bridge logs)", )
        sys.stdout.flush()
