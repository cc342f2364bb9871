"""``hl7gw bench --intake``: MLLP intake throughput, next to its ceiling, in one run.

Three figures over real loopback sockets with C concurrent senders, each waiting for its
ACK before sending the next message (how MLLP senders behave):

- ``echo``: a listener that ACKs every frame at once (framing and sockets only) — the
  ceiling for this machine and event loop;
- ``spool``: the same with every frame committed to a real SQLite spool first;
- ``intake``: the gateway's real intake (decode, check the structure, spool, ACK);
  mapping to FHIR runs after the ACK, in the publisher's worker process.

Kafka is not involved: intake does not wait for it (the publisher drains the spool apart).
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.ack import build_ack, sniff_envelope
from gateway.config import ListenerSettings
from gateway.intake import Intake
from gateway.metrics import GatewayMetrics
from gateway.mllp.client import MllpClient
from gateway.mllp.server import MllpListener
from gateway.spool import Accepted, Spool

Handler = Callable[[bytes, str], Awaitable[bytes | None]]


@dataclass(frozen=True)
class BenchResult:
    """Throughput and ACK latency of one configuration."""

    name: str
    messages: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds


async def _drive(handler: Handler, messages: list[bytes], connections: int,
                 name: str) -> BenchResult:
    listener = MllpListener(ListenerSettings(name="bench", port=0), handler, GatewayMetrics())
    port = await listener.start()
    latencies: list[float] = []

    async def sender(part: list[bytes]) -> None:
        async with MllpClient("127.0.0.1", port, timeout=30) as client:
            for message in part:
                began = time.perf_counter()
                await client.send(message)
                latencies.append(time.perf_counter() - began)

    parts = [messages[i::connections] for i in range(connections)]
    began = time.perf_counter()
    await asyncio.gather(*(sender(p) for p in parts))
    elapsed = time.perf_counter() - began
    await listener.stop()
    q = statistics.quantiles(latencies, n=100)
    return BenchResult(name, len(messages), elapsed, q[49] * 1000, q[98] * 1000)


def _variants(message: bytes, count: int) -> list[bytes]:
    """``count`` copies of ``message`` with distinct MSH-10 (so none is a duplicate)."""
    first, rest = message.split(b"\r", 1)
    fields = first.split(b"|")
    out = []
    for i in range(count):
        fields[9] = f"BENCH{i:08d}".encode()
        out.append(b"|".join(fields) + b"\r" + rest)
    return out


async def run_intake_bench(message: bytes, count: int, connections: int) -> list[BenchResult]:
    """Measure echo (ceiling), spool-only and full intake; return the three results."""
    messages = _variants(message, count)
    ack = build_ack(sniff_envelope(messages[0].decode("latin-1")), "AA",
                    ack_control_id="BENCH").encode()

    async def echo(frame: bytes, peer: str) -> bytes:
        return ack

    results = [await _drive(echo, messages, connections, "echo (ceiling)")]
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp) / "spool.db")
        await spool.start()

        async def spool_only(frame: bytes, peer: str) -> bytes:
            sha = hashlib.sha256(frame).hexdigest()
            row = Accepted("bench", peer, "B|B", sha, "ADT^A01", sha, frame, ack, sha)
            return (await spool.store(row)).ack

        results.append(await _drive(spool_only, messages, connections, "spool + ACK"))
        await spool.stop()
        spool = Spool(Path(tmp) / "intake.db")
        await spool.start()
        intake = Intake(ListenerSettings(name="bench"), spool, GatewayMetrics())

        async def full(frame: bytes, peer: str) -> bytes | None:
            return (await intake.handle(frame, peer)).ack

        results.append(await _drive(full, messages, connections, "intake: check + spool + ACK"))
        await spool.stop()
    return results
