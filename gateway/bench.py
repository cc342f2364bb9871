"""``hl7gw bench intake``: MLLP intake throughput, next to its ceiling, in one run.

Figures over real loopback sockets with C concurrent senders in a separate process, each
waiting for its ACK before sending the next message (how MLLP senders behave):

- ``bare asyncio echo``: the least an asyncio MLLP server can do (read, frame, answer) —
  the ceiling for this machine;
- ``gateway listener, no spool``: the real listener (limits, deadlines, metrics) answering
  at once;
- ``spool``: the same with every frame committed to a real SQLite spool first;
- ``intake``: the gateway's real intake (decode, check the structure, spool, ACK);
  mapping to FHIR runs after the ACK, in the publisher's worker process.

Kafka is not involved: intake does not wait for it (the publisher drains the spool apart).
The four run back to back in each of several rounds, and each figure is the median over
the rounds, its ratio taken to the ceiling of its own round.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.ack import build_ack, sniff_envelope
from gateway.config import ListenerSettings
from gateway.intake import Intake
from gateway.metrics import GatewayMetrics
from gateway.mllp.client import MllpClient
from gateway.mllp.framing import FrameDecoder, encode_frame
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
    median_rate: float | None = None  # set when several rounds were combined
    ratio: float = 1.0  # to the echo ceiling (of the same round; median over rounds)
    rounds: int = 1

    @property
    def rate(self) -> float:
        """Messages per second (the median over rounds when there were several)."""
        return self.median_rate if self.median_rate is not None else self.messages / self.seconds


async def _drive(handler: Handler, messages: list[bytes], connections: int,
                 name: str, *, bare: bool = False) -> BenchResult:
    """Serve ``handler`` here; the senders run in another process, as real senders would."""
    if bare:
        server = await asyncio.start_server(_bare_echo(handler), "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
    else:
        listener = MllpListener(ListenerSettings(name="bench", port=0), handler,
                                GatewayMetrics())
        port = await listener.start()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    senders = ctx.Process(target=_senders_main, args=(port, messages, connections, child))
    senders.start()
    loop = asyncio.get_running_loop()
    elapsed, latencies = await loop.run_in_executor(None, parent.recv)
    await loop.run_in_executor(None, senders.join)
    if bare:
        server.close()
        await server.wait_closed()
    else:
        await listener.stop()
    q = statistics.quantiles(latencies, n=100)
    return BenchResult(name, len(messages), elapsed, q[49] * 1000, q[98] * 1000)


def _bare_echo(handler: Handler) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                               Awaitable[None]]:
    """The least an asyncio MLLP server can do: read, frame, answer. The ceiling."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            for frame in decoder.feed(data):
                ack = await handler(frame, "")
                if ack is not None:
                    writer.write(encode_frame(ack))
            await writer.drain()
        writer.close()
    return serve


def _senders_main(port: int, messages: list[bytes], connections: int, out: Any) -> None:
    """Child process: ``connections`` senders, each waiting for its ACK before the next."""
    latencies: list[float] = []

    async def sender(part: list[bytes]) -> None:
        async with MllpClient("127.0.0.1", port, timeout=30) as client:
            for message in part:
                began = time.perf_counter()
                await client.send(message)
                latencies.append(time.perf_counter() - began)

    async def run() -> float:
        parts = [messages[i::connections] for i in range(connections)]
        began = time.perf_counter()
        await asyncio.gather(*(sender(p) for p in parts))
        return time.perf_counter() - began

    out.send((asyncio.run(run()), latencies))
    out.close()


def _variants(message: bytes, count: int, start: int = 0) -> list[bytes]:
    """``count`` copies of ``message`` with distinct MSH-10 (so none is a duplicate)."""
    first, rest = message.split(b"\r", 1)
    fields = first.split(b"|")
    out = []
    for i in range(start, start + count):
        fields[9] = f"BENCH{i:08d}".encode()
        out.append(b"|".join(fields) + b"\r" + rest)
    return out


async def run_intake_bench(message: bytes, count: int, connections: int,
                           rounds: int = 3) -> list[BenchResult]:
    """Echo (ceiling), listener, spool-only and full intake, in ``rounds`` interleaved rounds.

    A shared machine's speed drifts within seconds (the same echo ceiling has measured
    3,700 and 14,000 msg/s a minute apart here), so each round measures all four
    configurations back to back on ``count // rounds`` messages, each ratio is taken
    against the ceiling of its own round, and every figure is the median over the rounds.
    """
    per_round = max(connections, count // rounds)
    rounds_out: list[list[BenchResult]] = []
    for r in range(rounds):
        messages = _variants(message, per_round, start=r * per_round)
        rounds_out.append(await _one_round(messages, connections))
    return [_median_of([results[i] for results in rounds_out])
            for i in range(len(rounds_out[0]))]


def _median_of(results: list[BenchResult]) -> BenchResult:
    """One configuration's rounds: median rate, latencies and ratio to each round's ceiling."""
    first = results[0]
    return BenchResult(first.name, sum(r.messages for r in results),
                       sum(r.seconds for r in results),
                       statistics.median(r.p50_ms for r in results),
                       statistics.median(r.p99_ms for r in results),
                       median_rate=statistics.median(r.rate for r in results),
                       ratio=statistics.median(r.ratio for r in results), rounds=len(results))


async def _one_round(messages: list[bytes], connections: int) -> list[BenchResult]:
    """Each configuration once, on fresh spool files; ratios against this round's echo."""
    ack = build_ack(sniff_envelope(messages[0].decode("latin-1")), "AA",
                    ack_control_id="BENCH").encode()

    async def echo(frame: bytes, peer: str) -> bytes:
        return ack

    results = [await _drive(echo, messages, connections, "bare asyncio echo (ceiling)",
                            bare=True),
               await _drive(echo, messages, connections, "gateway listener, no spool")]
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
    ceiling = results[0].rate
    return [dataclasses.replace(r, ratio=r.rate / ceiling) for r in results]
