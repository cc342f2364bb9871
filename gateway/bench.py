"""``hl7gw bench intake``: MLLP intake throughput, next to the transport's and the disk's
ceilings, in one run.

Figures over real loopback sockets with C concurrent senders in a separate process, each
waiting for its ACK before sending the next message (how MLLP senders behave). Three
ceilings (gateway/bench_ceilings.py), then the gateway's own configurations:

- ``bare asyncio echo``: the least an asyncio MLLP server can do (read, frame, answer) —
  the transport's ceiling;
- ``fsync floor``: the echo plus one write and one ``fdatasync`` per frame into a
  preallocated file — the disk's ceiling for one sender, which cannot share a sync;
- ``group-commit ceiling``: one write and one ``fdatasync`` for every frame that arrived
  together — the disk's ceiling for several senders;
- ``gateway listener, no spool``: the real listener (limits, deadlines, metrics) answering
  at once;
- ``spool + ACK``: the same with every frame committed to a real spool first, as the
  gateway runs it (the intake journal in front of SQLite, docs/journal.md);
- ``intake: check + spool + ACK``: the gateway's real intake (decode, check the structure,
  spool, ACK); mapping to FHIR runs after the ACK, in the publisher's worker process;
- ``intake, encrypted at rest``: the same with bodies and ACKs sealed (AES-256-GCM);
- ``intake, journal off``: the same committing to SQLite itself (``spool.journal: false``),
  what the journal is measured against.

Kafka is not involved: intake does not wait for it (the publisher drains the spool apart).
The files (the ceilings' file, the spools) go in the folder given (``--dir``): the disk
measured is the one that folder is on. All of them run back to back in each of several rounds;
each figure is the median over the rounds, and each ratio the median of the ratios to the
ceilings of the same round. Each configuration's CPU time per message is given too, the
server's (this process: its loop and threads) and the senders' (their process): on a shared
machine whose speed drifts, a change's cost shows there more steadily than in msg/s, and
with the cores they share the two give the most msg/s that CPU allows
(:meth:`BenchResult.cpu_bound`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.ack import build_ack, sniff_envelope
from gateway.bench_ceilings import (
    BenchError,
    EchoServer,
    FrameLog,
    FsyncFloorServer,
    GroupCommitServer,
    frame_log_size,
    senders_main,
)
from gateway.config import ListenerSettings, SpoolSettings
from gateway.cpu_time import cpu_bound, usable_cores
from gateway.fsinfo import FileSystem
from gateway.intake import Intake
from gateway.metrics import GatewayMetrics
from gateway.mllp.server import MllpListener
from gateway.spool import Accepted, Spool

if TYPE_CHECKING:
    from gateway.keys.keyring import Keyring

Handler = Callable[[bytes, str], Awaitable[bytes | None]]

ECHO = "bare asyncio echo"
FLOOR = "fsync floor"
GROUP = "group-commit ceiling"
# The ceilings, by the key their ratios carry in --json.
CEILINGS = {"echo": ECHO, "fsync_floor": FLOOR, "group_commit": GROUP}


def ceiling_for(connections: int) -> str:
    """The key of the ceiling that bounds a durable intake with this many senders.

    One sender waits for each ACK, so nothing can share its sync: the fsync floor. Several
    can share one sync per batch: the group-commit ceiling.
    """
    return "fsync_floor" if connections == 1 else "group_commit"


@dataclass(frozen=True)
class BenchResult:
    """Throughput and ACK latency of one configuration."""

    name: str
    messages: int
    seconds: float
    p50_ms: float
    p99_ms: float
    median_rate: float | None = None  # set when several rounds were combined
    # to each ceiling of CEILINGS (of the same round; the median over rounds)
    ratios: dict[str, float] = field(default_factory=dict)
    rounds: int = 1
    # CPU time of this process (the server's event loop and its threads) per message:
    # steadier than msg/s on a shared machine, whose speed drifts from second to second.
    cpu_us_per_msg: float = 0.0
    # CPU time of the senders' process per message: the load generator's share of the cores.
    senders_cpu_us_per_msg: float = 0.0

    @property
    def rate(self) -> float:
        """Messages per second (the median over rounds when there were several)."""
        return self.median_rate if self.median_rate is not None else self.messages / self.seconds

    def cpu_bound(self, cores: int) -> float:
        """The most msg/s this configuration could reach here if CPU were all that bound
        it (:func:`gateway.cpu_time.cpu_bound`), its senders being the other process.
        ``cores``: the cores that can work at once, no more than the senders (one sender
        and the server take turns: each waits for the other)."""
        return cpu_bound(cores, self.cpu_us_per_msg, self.senders_cpu_us_per_msg)


async def _measure(port: int, messages: list[bytes], connections: int,
                   name: str) -> BenchResult:
    """Send ``messages`` to ``port`` from another process, as real senders would."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    senders = ctx.Process(target=senders_main, args=(port, messages, connections, child))
    senders.start()
    child.close()  # only the senders hold the sending end: their death ends recv()
    loop = asyncio.get_running_loop()
    cpu_before = time.process_time()  # after the spawn: the server's work from here on
    try:
        elapsed, latencies, senders_cpu = await loop.run_in_executor(None, parent.recv)
        cpu = time.process_time() - cpu_before
    except EOFError:
        await loop.run_in_executor(None, senders.join)
        raise BenchError(f"the senders to {name!r} stopped without figures (exit code "
                         f"{senders.exitcode}): see the error above") from None
    finally:
        parent.close()
    await loop.run_in_executor(None, senders.join)
    q = statistics.quantiles(latencies, n=100)
    return BenchResult(name, len(messages), elapsed, q[49] * 1000, q[98] * 1000,
                       cpu_us_per_msg=cpu / len(messages) * 1e6,
                       senders_cpu_us_per_msg=senders_cpu / len(messages) * 1e6)


async def _measure_listener(handler: Handler, messages: list[bytes], connections: int,
                            name: str) -> BenchResult:
    """The gateway's real MLLP listener, answering with ``handler``."""
    listener = MllpListener(ListenerSettings(name="bench", port=0), handler, GatewayMetrics())
    port = await listener.start()
    try:
        return await _measure(port, messages, connections, name)
    finally:
        await listener.stop()


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
                           rounds: int = 3, folder: Path | None = None) -> list[BenchResult]:
    """The three ceilings and the gateway's three configurations, in interleaved rounds.

    A shared machine's speed drifts within seconds (the same echo ceiling has measured
    3,700 and 14,000 msg/s a minute apart here), so each round measures all six back to
    back on ``count // rounds`` messages, each ratio is taken against the ceilings of its
    own round, and every figure is the median over the rounds. Files go in ``folder``
    (default: the system's temporary folder), in a subfolder removed after each round.
    """
    per_round = max(connections, count // rounds)
    rounds_out: list[list[BenchResult]] = []
    for r in range(rounds):
        messages = _variants(message, per_round, start=r * per_round)
        with tempfile.TemporaryDirectory(prefix="hl7gw-bench-", dir=folder) as tmp:
            rounds_out.append(await _one_round(messages, connections, Path(tmp)))
    return [_median_of([results[i] for results in rounds_out])
            for i in range(len(rounds_out[0]))]


def _median_of(results: list[BenchResult]) -> BenchResult:
    """One configuration's rounds: median rate, latencies and ratio to each round's ceilings."""
    first = results[0]
    return BenchResult(first.name, sum(r.messages for r in results),
                       sum(r.seconds for r in results),
                       statistics.median(r.p50_ms for r in results),
                       statistics.median(r.p99_ms for r in results),
                       median_rate=statistics.median(r.rate for r in results),
                       ratios={key: statistics.median(r.ratios[key] for r in results)
                               for key in first.ratios},
                       rounds=len(results),
                       cpu_us_per_msg=statistics.median(r.cpu_us_per_msg for r in results),
                       senders_cpu_us_per_msg=statistics.median(
                           r.senders_cpu_us_per_msg for r in results))


async def _one_round(messages: list[bytes], connections: int,
                     folder: Path) -> list[BenchResult]:
    """Each configuration once, on fresh files in ``folder``; ratios to this round's ceilings."""
    ack = build_ack(sniff_envelope(messages[0].decode("latin-1")), "AA",
                    ack_control_id="BENCH").encode()
    size = frame_log_size(messages)
    async with EchoServer(ack) as echo_server:
        results = [await _measure(echo_server.port, messages, connections, ECHO)]
    with FrameLog.create(folder / "floor.log", size) as log:
        async with FsyncFloorServer(log, ack) as floor_server:
            results.append(await _measure(floor_server.port, messages, connections, FLOOR))
    with FrameLog.create(folder / "group.log", size) as log:
        async with GroupCommitServer(log, ack) as group_server:
            results.append(await _measure(group_server.port, messages, connections, GROUP))

    async def echo(frame: bytes, peer: str) -> bytes:
        return ack

    results.append(await _measure_listener(echo, messages, connections,
                                           "gateway listener, no spool"))
    # The spool as the gateway runs it: the intake journal in front of SQLite.
    spool = _spool(folder / "spool.db", journal=True)
    await spool.start()
    try:
        async def spool_only(frame: bytes, peer: str) -> bytes:
            sha = hashlib.sha256(frame).hexdigest()
            row = Accepted("bench", peer, "B|B", sha, "ADT^A01", sha, frame, ack, sha)
            return (await spool.store(row)).ack

        results.append(await _measure_listener(spool_only, messages, connections,
                                               "spool + ACK"))
    finally:
        await spool.stop()
    for name, journal, keyring in (
            ("intake: check + spool + ACK", True, None),
            ("intake, encrypted at rest", True, _bench_keyring()),
            ("intake, journal off", False, None)):
        results.append(await _measure_intake(
            _spool(folder / f"{len(results)}.db", journal=journal, keyring=keyring),
            messages, connections, name))
    rates = {r.name: r.rate for r in results}
    return [dataclasses.replace(r, ratios={key: r.rate / rates[name]
                                           for key, name in CEILINGS.items()})
            for r in results]


def _spool(path: Path, *, journal: bool, keyring: Keyring | None = None) -> Spool:
    """A spool as ``hl7gw serve`` makes it (journal next to the file), or SQLite alone."""
    where = SpoolSettings(path=path, journal=journal)
    return Spool(path, journal_dir=where.journal_path, keyring=keyring)


def _bench_keyring() -> Keyring:
    """A throwaway AES-256 key: what encryption at rest costs, not who holds the key."""
    from gateway.keys.keyring import DataKey, Keyring

    return Keyring([DataKey("bench", os.urandom(32))], "bench")


async def _measure_intake(spool: Spool, messages: list[bytes], connections: int,
                          name: str) -> BenchResult:
    """The real intake (decode, check, store, ACK) on ``spool``."""
    await spool.start()
    try:
        intake = Intake(ListenerSettings(name="bench"), spool, GatewayMetrics())

        async def full(frame: bytes, peer: str) -> bytes | None:
            return (await intake.handle(frame, peer)).ack

        return await _measure_listener(full, messages, connections, name)
    finally:
        await spool.stop()


def intake_figures(runs: dict[int, list[BenchResult]], *, count: int, rounds: int,
                   folder: Path, fs: FileSystem, cores: int | None = None) -> dict[str, Any]:
    """What ``--json`` prints: where it measured, then per sender count each configuration.

    Each configuration has ``msg_per_s``, ``p50_ms``, ``p99_ms``, ``cpu_us_per_msg`` (this
    process's CPU time per message: the server's), ``senders_cpu_us_per_msg`` (the
    senders' process's), ``cpu_bound_msg_per_s`` (:meth:`BenchResult.cpu_bound` on
    ``cores``: the most it could reach here at that CPU cost) and the same as a
    ``cpu_bound_ratio_to_ceiling``, ``ratios`` (to every ceiling: ``echo``,
    ``fsync_floor``, ``group_commit``) and ``ratio_to_ceiling`` (to the one that bounds
    that many senders, named by the sender count's ``ceiling``).
    """
    cores = cores or usable_cores()
    out: dict[str, Any] = {
        "messages": count, "rounds": rounds, "dir": str(folder), "cores": cores,
        "file_system": {"mount_point": fs.mount_point, "fs_type": fs.fs_type,
                        "device": fs.device, "dev": fs.dev},
        "connections": {}}
    for conns, results in runs.items():
        key = ceiling_for(conns)
        ceiling = next(r.rate for r in results if r.name == CEILINGS[key])
        out["connections"][str(conns)] = {
            "ceiling": key,
            "configurations": {r.name: {
                "msg_per_s": round(r.rate), "p50_ms": round(r.p50_ms, 3),
                "p99_ms": round(r.p99_ms, 3), "rounds": r.rounds,
                "cpu_us_per_msg": round(r.cpu_us_per_msg, 1),
                "senders_cpu_us_per_msg": round(r.senders_cpu_us_per_msg, 1),
                "cpu_bound_msg_per_s": round(r.cpu_bound(min(cores, conns))),
                "cpu_bound_ratio_to_ceiling": round(r.cpu_bound(min(cores, conns)) / ceiling,
                                                    3),
                "ratio_to_ceiling": round(r.ratios[key], 3),
                "ratios": {k: round(v, 3) for k, v in r.ratios.items()}}
                for r in results}}
    return out


def intake_lines(runs: dict[int, list[BenchResult]], *, count: int, rounds: int,
                 folder: Path, fs: FileSystem, cores: int | None = None) -> list[str]:
    """The text report: a header naming the disk, then per sender count one line each,
    with the ratio to the ceiling that bounds that many senders and to the echo, the CPU
    time per message of the server and of the senders, and the rate that CPU cost allows
    on this machine's cores (:meth:`BenchResult.cpu_bound`)."""
    cores = cores or usable_cores()
    lines = [f"MLLP intake, {count} messages, median of {rounds} interleaved round(s); "
             f"files in {folder}, on {fs.describe()}; {cores} core(s), shared by the "
             "senders and the server (cpu-bound: the most msg/s their CPU time per "
             "message allows):"]
    for conns, results in runs.items():
        key = ceiling_for(conns)
        lines.append(f"{conns} sender(s) waiting for each ACK; the disk's ceiling for them: "
                     f"{CEILINGS[key]}")
        for r in results:
            lines.append(f"  {r.name:28s} {r.rate:9,.0f} msg/s  p50 {r.p50_ms:6.2f} ms"
                         f"  p99 {r.p99_ms:6.2f} ms  {r.ratios[key]:7.1%} of {CEILINGS[key]}"
                         f"  {r.ratios['echo']:7.1%} of echo"
                         f"  cpu {r.cpu_us_per_msg:5.0f} µs/msg"
                         f" (senders {r.senders_cpu_us_per_msg:4.0f})"
                         f"  cpu-bound {r.cpu_bound(min(cores, conns)):8,.0f} msg/s")
    return lines
