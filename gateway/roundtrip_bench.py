"""``hl7gw bench roundtrip``: MLLP in -> Kafka -> function -> Kafka -> MLLP out, timed.

The whole return path with real parts: vitals ORU^R01 messages (one new patient each)
are sent over MLLP at a steady offered rate to the gateway, which spools, ACKs, maps and
publishes them; the bridge delivers them to the NEWS2 function (``hl7gw function serve``
in its own process, as a deployment runs it apart); its RiskAssessment result goes to the
outbound topic, back through the gateway's outbound queue, and out over MLLP to a local
EHR. The figure per rate: the time from the inbound ACK to the outbound ORU^R01's
arrival at the EHR, per message (p50, p99, max), and the rate the results came back at.

Gateway, bridge, EHR and the sender share this process's event loop (the mapping worker
and the function have processes of their own), so on a small machine the figures include
their competition for the cores, as a single-host deployment would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from connectors.bridge import Bridge
from connectors.settings import BridgeSettings, KafkaSettings, ProbeSettings
from gateway.ack import ack_code_of
from gateway.config import (
    GatewaySettings,
    HttpSettings,
    ListenerSettings,
    ProfilesSettings,
    SpoolSettings,
)
from gateway.dev.ehr import LocalEhr
from gateway.dev.kafka import free_port
from gateway.errors import GatewayError
from gateway.mllp.client import MllpClient, split_messages
from gateway.outbound.settings import DestinationSettings, OutboundSettings
from gateway.service import GatewayService

SAMPLE = Path("samples/oru_r01_vitals.hl7")
PROFILES = Path("samples/profiles")
WARMUP = 20
RETURN_WAIT_S = 120.0
_PID3 = re.compile(rb"(\rPID\|[^|]*\|[^|]*\|)([^^|]+)")
_MRN_IN_PID = re.compile(rb"\rPID\|[^|]*\|[^|]*\|([^^|]+)")


def numbered(sample: bytes, tag: str, n: int) -> tuple[str, bytes]:
    """The sample as patient ``<tag>-<n>`` (a new patient each: NEWS2 keeps state per
    patient) with a control id of its own; (its MRN, the message)."""
    mrn = f"{tag}{n:06d}"
    first, rest = sample.split(b"\r", 1)
    fields = first.split(b"|")
    fields[9] = f"RT{tag}{n:06d}".encode()
    message = b"|".join(fields) + b"\r" + rest
    return mrn, _PID3.sub(lambda m: m.group(1) + mrn.encode(), message, count=1)


def mrn_of(message: bytes) -> str | None:
    """PID-3.1 of a message the EHR received."""
    found = _MRN_IN_PID.search(b"\r" + message)
    return found.group(1).decode() if found else None


def read_sample(path: Path = SAMPLE) -> bytes:
    """The first message of the vitals sample."""
    return split_messages(path.read_bytes())[0]


async def run_roundtrip_bench(bootstrap: str, rates: Sequence[int], seconds: float,
                              message: bytes) -> dict[str, Any]:
    """Measure each offered rate for ``seconds`` with ``message`` (a vitals ORU^R01)."""
    run = uuid.uuid4().hex[:8]
    topics = {"in": f"bench-rt-{run}", "out": f"bench-rt-{run}.outbound"}
    await _create_topics(bootstrap, list(topics.values()))
    with tempfile.TemporaryDirectory(prefix="hl7gw-roundtrip-") as tmp:
        function_port = free_port()
        function = _start_function(function_port)
        try:
            await _wait_ready(f"http://127.0.0.1:{function_port}/readyz", function)
            async with LocalEhr() as ehr:
                settings = _settings(Path(tmp), bootstrap, topics, function_port, ehr.port)
                assert settings.bridge is not None
                bridge = Bridge(settings.bridge, settings.kafka)
                bridge_task = asyncio.create_task(bridge.run())
                try:
                    async with GatewayService(settings, http=False) as gateway:
                        port = gateway.listeners[0].port
                        await _offer(port, message, ehr, "W", WARMUP, rate=50)  # warm-up
                        figures = {}
                        for n, rate in enumerate(rates):
                            count = max(int(rate * seconds), 1)
                            figures[str(rate)] = await _offer(port, message, ehr, f"R{n}",
                                                              count, rate=rate)
                finally:
                    await bridge.stop()
                    await asyncio.wait({bridge_task}, timeout=10)
        finally:
            function.terminate()
            try:
                function.wait(10)
            except subprocess.TimeoutExpired:
                function.kill()
    return {"sample": str(SAMPLE), "seconds_per_rate": seconds, "cores": os.cpu_count(),
            "function": "news2 (hl7gw function serve, own process)", "rates": figures}


async def _offer(port: int, sample: bytes, ehr: LocalEhr, tag: str, count: int, *,
                 rate: float) -> dict[str, Any]:
    """Send ``count`` messages at ``rate`` msg/s; wait for their results at the EHR."""
    acked: dict[str, float] = {}
    senders = max(1, min(8, round(rate / 100)))  # each paced at rate / senders
    messages = [numbered(sample, tag, n) for n in range(count)]
    start = time.monotonic() + 0.05
    wall = time.time() - time.monotonic()  # monotonic -> wall (the EHR stamps wall time)

    async def send(lane: int) -> None:
        async with MllpClient("127.0.0.1", port, timeout=30) as client:
            for n in range(lane, count, senders):
                due = start + n / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                mrn, msg = messages[n]
                ack = await client.send(msg)
                if ack_code_of(ack.decode("latin-1")) in ("AA", "CA"):
                    acked[mrn] = time.monotonic() + wall

    began = time.monotonic()
    await asyncio.gather(*(send(lane) for lane in range(senders)))
    sent_s = time.monotonic() - began
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + RETURN_WAIT_S
    seen = 0
    while len(arrived) < len(acked) and time.monotonic() < deadline:
        for received in ehr.received[seen:]:
            mrn = mrn_of(received.raw)
            if mrn in acked and mrn not in arrived:
                arrived[mrn] = received.at
        seen = len(ehr.received)
        await asyncio.sleep(0.02)
    latencies = sorted((arrived[m] - acked[m]) * 1000 for m in arrived)
    span = (max(arrived.values()) - min(acked.values())) if arrived else 0.0
    return {
        "offered_msg_per_s": rate, "sent": count, "acked": len(acked),
        "returned": len(arrived), "send_seconds": round(sent_s, 2),
        "achieved_msg_per_s": round(len(arrived) / span, 1) if span > 0 else 0.0,
        "p50_ms": round(_quantile(latencies, 0.50), 1),
        "p99_ms": round(_quantile(latencies, 0.99), 1),
        "max_ms": round(latencies[-1], 1) if latencies else 0.0,
    }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _settings(tmp: Path, bootstrap: str, topics: dict[str, str], function_port: int,
              ehr_port: int) -> GatewaySettings:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic=topics["in"])
    return GatewaySettings(
        source="urn:hl7gw:bench",
        listeners=[ListenerSettings(name="bench", port=0)],
        http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp / "spool.db"),
        profiles=ProfilesSettings(dir=PROFILES, watch_interval_s=0),
        kafka=kafka,
        bridge=BridgeSettings(topic=topics["in"], group_id=f"{topics['in']}-bridge",
                              target_url=f"http://127.0.0.1:{function_port}/events",
                              outbound_topic=topics["out"], dlq_topic=None,
                              commit_interval_s=0.2, http=ProbeSettings(enabled=False)),
        outbound=OutboundSettings(topic=topics["out"], group_id=f"{topics['in']}-outbound",
                                  destinations=[DestinationSettings(
                                      name="ehr", host="127.0.0.1", port=ehr_port)]))


def _start_function(port: int) -> subprocess.Popen[bytes]:
    hl7gw = str(Path(sys.executable).with_name("hl7gw"))
    env = {**os.environ, "HL7GW_PROCESSOR": "news2"}
    return subprocess.Popen([hl7gw, "function", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise GatewayError(f"the function exited with {proc.returncode} at start")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise GatewayError(f"the function did not answer {url} within {within:g} s")


async def _create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=3, replication_factor=1)
                                   for n in names])
    finally:
        await admin.close()

