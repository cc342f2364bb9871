"""``hl7gw bench mapper``: scale-out mapping throughput with 1, 2, 3... ``hl7gw mapper``s.

For each instance count, a fresh consumer group of real ``hl7gw mapper`` processes (each
with its mapping worker, as deployed) is started on an empty raw topic and waited for until
the group has settled (every partition held, every instance holding some). Then ``count``
raw events, built as the gateway's publisher builds them (keyed by patient, over 60
patients), are produced, and the clock runs until the last FHIR event is on the output
topic. The ceiling of the same run: the mapping of the same messages in this process, on one
core, without Kafka (``gateway.mapping.map_batch``). On a machine with fewer cores than
processes the instances share the cores, which the figures show.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.settings import KafkaSettings
from gateway.errors import GatewayError
from gateway.mapping import map_batch
from gateway.publisher import raw_event_for
from gateway.spool import PendingRow
from mappers import patient_key

PARTITIONS = 6  # enough for up to 6 instances to hold some
PATIENTS = 60
START_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 600.0


def raw_events(sample: bytes, count: int) -> list[Event]:
    """``count`` raw events of ``sample`` over ``PATIENTS`` patients, as the gateway sends."""
    text = sample.decode()
    events = []
    for n in range(count):
        message = _control_id(_patient(text, f"B{n % PATIENTS:05d}"), f"BENCH{n}")
        raw = message.encode()
        row = PendingRow(n + 1, time.time(), "BENCH|F", f"BENCH{n}", "ADT^A01",
                         f"bench-{n}", raw, "utf-8", "UTC")
        events.append(raw_event_for(row, patient_key(message), "urn:hl7gw:bench"))
    return events


def _patient(text: str, mrn: str) -> str:
    lines = text.split("\r")
    for n, line in enumerate(lines):
        if line.startswith("PID|"):
            fields = line.split("|")
            fields[3] = mrn + fields[3][fields[3].find("^"):] if "^" in fields[3] else mrn
            lines[n] = "|".join(fields)
    return "\r".join(lines)


def _control_id(text: str, control_id: str) -> str:
    first, _, rest = text.partition("\r")
    fields = first.split("|")
    fields[9] = control_id
    return "|".join(fields) + "\r" + rest


def ceiling(events: Sequence[Event]) -> float:
    """Messages per second mapped in this process, one core, no Kafka."""
    requests = [(e.data, "utf-8", "UTC", 0) for e in events]
    map_batch(requests[:50])  # load the specs outside the clock
    start = time.perf_counter()
    for n in range(0, len(requests), 200):
        map_batch(requests[n:n + 200])
    return len(requests) / (time.perf_counter() - start)


async def run_mapper_bench(bootstrap: str, message: bytes, count: int,
                           instances: Sequence[int]) -> dict[str, Any]:
    """Figures per instance count for ``count`` copies of ``message`` (module docstring)."""
    events = raw_events(message, count)
    figures: dict[str, Any] = {"messages": count,
                               "partitions": PARTITIONS, "cores": os.cpu_count(),
                               "ceiling_one_core_msg_per_s": round(ceiling(events))}
    runs: dict[str, Any] = {}
    for k in instances:
        runs[str(k)] = await _one_run(bootstrap, events, k)
        runs[str(k)]["ratio_to_ceiling"] = round(
            runs[str(k)]["msg_per_s"] / figures["ceiling_one_core_msg_per_s"], 3)
    figures["instances"] = runs
    return figures


async def _one_run(bootstrap: str, events: Sequence[Event], instances: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    raw_topic, fhir_topic = f"bench-raw-{tag}", f"bench-fhir-{tag}"
    await _create_topics(bootstrap, [raw_topic, fhir_topic])
    with tempfile.TemporaryDirectory(prefix="hl7gw-bench-mapper-") as tmp:
        procs, ports = _start(Path(tmp), bootstrap, raw_topic, fhir_topic, instances)
        try:
            await _settled(ports, procs)
            kafka = KafkaSettings(bootstrap_servers=bootstrap, linger_ms=20)
            start = time.monotonic()
            async with EventProducer(kafka) as producer:
                produced = asyncio.create_task(_produce(producer, raw_topic, events))
                seen = await _count(bootstrap, fhir_topic, len(events))
                await produced
            elapsed = time.monotonic() - start
        finally:
            _stop(procs)
    return {"seconds": round(elapsed, 2), "msg_per_s": round(len(events) / elapsed),
            "published": seen}


async def _create_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics])
    finally:
        await admin.close()


def _start(tmp: Path, bootstrap: str, raw_topic: str, fhir_topic: str, instances: int
           ) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    hl7gw = str(Path(sys.executable).with_name("hl7gw"))
    procs, ports = [], []
    for n in range(instances):
        port = _free_port()
        config = tmp / f"mapper{n}.yaml"
        config.write_text(yaml.safe_dump({
            "kafka": {"bootstrap_servers": bootstrap, "topic": fhir_topic},
            "scale_out": {"raw_topic": raw_topic, "group_id": f"bench-{raw_topic}",
                          "http": {"port": port}}}))
        with (tmp / f"mapper{n}.log").open("wb") as log:  # the child keeps its own copy
            procs.append(subprocess.Popen([hl7gw, "mapper", "--config", str(config),
                                           "--log-level", "warning"], stdout=log, stderr=log))
        ports.append(port)
    return procs, ports


async def _settled(ports: list[int], procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait until every partition is held and every instance holds some."""
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            held = []
            for port in ports:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    held.append((await client.get(f"http://127.0.0.1:{port}/readyz")
                                 ).json()["partitions"])
            if len(held) == len(ports) and sum(held) == PARTITIONS and min(held) > 0:
                return
            if any(p.poll() is not None for p in procs):
                raise GatewayError("an hl7gw mapper exited during start-up")
            await asyncio.sleep(0.25)
    raise GatewayError(f"the mapper group did not settle within {START_TIMEOUT_S:g}s")


async def _produce(producer: EventProducer, topic: str, events: Sequence[Event]) -> None:
    for n in range(0, len(events), 500):
        for result in await producer.send_batch(topic, events[n:n + 500]):
            if not isinstance(result, tuple):
                raise result


async def _count(bootstrap: str, topic: str, expect: int) -> int:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: set[bytes] = set()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while len(seen) < expect:
            if time.monotonic() > deadline:
                raise GatewayError(f"only {len(seen)} of {expect} events mapped within "
                                   f"{RUN_TIMEOUT_S:g}s")
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                seen.update(dict(r.headers)["ce_id"] for r in batch)
    finally:
        await consumer.stop()
    return len(seen)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
