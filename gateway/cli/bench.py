"""``hl7gw bench``: throughput figures for this machine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from gateway.cli.bench_pipeline import bench_pipeline
from gateway.cli.common import COUNT


@click.group()
def bench() -> None:
    """Measure throughput on this machine and print the numbers (``--json`` for scripts).

    Each figure is shown next to a ceiling measured in the same run, so the ratio says
    what the gateway's own work costs here.
    """


bench.add_command(bench_pipeline)  # gateway/cli/bench_pipeline.py


@contextlib.contextmanager
def kafka_for_bench() -> Iterator[str]:
    """``KAFKA_BOOTSTRAP_SERVERS``, else a local broker started for the bench (and stopped
    after it, its data in a temporary folder)."""
    import os
    import tempfile

    from gateway.dev.kafka import LocalKafka, default_cache_dir

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="hl7gw-bench-") as tmp:
        click.echo("starting a local Kafka broker ...", err=True)
        broker = LocalKafka(data_dir=Path(tmp), cache_dir=default_cache_dir())
        try:
            yield broker.start()
        finally:
            broker.stop()


def _emit(figures: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        import orjson

        click.echo(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    else:
        for line in lines:
            click.echo(line)


@bench.command("map")
@click.option("-n", "count", type=click.IntRange(min=5), default=2000, show_default=True,
              help="Messages per measurement (at least one per timing round: 5).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_map(count: int, as_json: bool) -> None:
    """Parsing and mapping, per message type, on one core; next to full model validation."""
    from mappers._accel import status
    from mappers.bench import run

    figures = run(count)
    build = status()
    _emit({"mapper": build, **figures}, as_json,
          [f"mapping, {count} messages, one core; mapper {build}:"]
          + [f"  {name:38s} {value:12,.0f}" for name, value in figures.items()])


@bench.command("intake")
@click.option("-n", "count", type=COUNT, default=2000, show_default=True,
              help="Messages per measurement.")
@click.option("--connections", type=COUNT, multiple=True, default=(1, 8), show_default=True,
              help="Concurrent MLLP senders (repeat for several runs).")
@click.option("--sample", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("samples/adt_a01.hl7"), show_default=True)
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Interleaved rounds; each figure is the median over them.")
@click.option("--dir", "folder", type=click.Path(exists=True, file_okay=False, writable=True,
                                                 path_type=Path),
              help="Folder on the disk to measure (the spool's): the bench's files go in a "
                   "subfolder of it, removed after.  [default: the system's temp folder]")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_intake(count: int, connections: tuple[int, ...], sample: Path, rounds: int,
                 folder: Path | None, as_json: bool) -> None:
    """MLLP intake over loopback, next to the transport's and the disk's ceilings.

    \b
    Ceilings: a bare asyncio echo (the transport), an fsync floor (one fdatasync per
    frame: the disk's limit for 1 sender) and a group-commit ceiling (one fdatasync per
    batch of frames that arrived together: the disk's limit for several senders). Then the
    listener without spool, spool + ACK, and the full intake (check + spool + ACK).
    Each round measures every configuration back to back; ratios are to the ceilings of
    the same round, and each figure is the median over the rounds (a shared machine
    drifts). Each configuration also shows the CPU time per message of the server (steadier
    than msg/s there) and of the senders, and the most msg/s those costs allow on this
    machine's cores (cpu-bound): a target above it needs cheaper work, not a faster disk.
    The files go in --dir: the disk measured is the one it is on, named in the output.
    """
    import tempfile

    from gateway.bench import intake_figures, intake_lines, run_intake_bench
    from gateway.fsinfo import file_system_of
    from gateway.mllp.client import split_messages

    message = split_messages(sample.read_bytes())[0]
    folder = (folder or Path(tempfile.gettempdir())).resolve()
    runs = {conns: asyncio.run(run_intake_bench(message, count, conns, rounds, folder))
            for conns in connections}
    where: dict[str, Any] = {"count": count, "rounds": rounds, "folder": folder,
                             "fs": file_system_of(folder)}
    _emit(intake_figures(runs, **where), as_json, intake_lines(runs, **where))


@bench.command("bridge")
@click.option("-n", "count", type=COUNT, default=2000, show_default=True,
              help="Events to send through Kafka to a local function.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_bridge(count: int, as_json: bool) -> None:
    """Events/second from Kafka through the bridge to a local function, in order per key.

    Uses ``KAFKA_BOOTSTRAP_SERVERS`` or starts a local broker.
    """

    from connectors.bench import run_bridge_bench
    from connectors.settings import KafkaSettings

    with kafka_for_bench() as bootstrap:
        figures = asyncio.run(run_bridge_bench(KafkaSettings(bootstrap_servers=bootstrap),
                                               count))
    _emit(figures, as_json, [f"  {k:38s} {v}" for k, v in figures.items()])


@bench.command("mapper")
@click.option("-n", "count", type=COUNT, default=5000, show_default=True,
              help="Raw messages to map per instance count.")
@click.option("--instances", type=click.IntRange(1, 6), multiple=True, default=(1, 2, 3),
              show_default=True, help="hl7gw mapper processes (repeat for several runs).")
@click.option("--sample", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("samples/adt_a01.hl7"), show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_mapper(count: int, instances: tuple[int, ...], sample: Path, as_json: bool) -> None:
    """Scale-out mapping: messages/second through 1, 2, 3 ``hl7gw mapper`` processes.

    Real processes in one consumer group, raw topic in, FHIR topic out (docs/scale-out.md),
    next to the same messages mapped in this process on one core. Uses
    ``KAFKA_BOOTSTRAP_SERVERS`` or starts a local broker.
    """

    from gateway.mllp.client import split_messages
    from gateway.scaleout_bench import run_mapper_bench

    with kafka_for_bench() as bootstrap:
        message = split_messages(sample.read_bytes())[0]
        figures = asyncio.run(run_mapper_bench(bootstrap, message, count, instances))
    lines = [f"scale-out mapping, {count} x {sample.name} over {figures['partitions']} "
             f"partitions, {figures['cores']} cores; one core in-process: "
             f"{figures['ceiling_one_core_msg_per_s']:,} msg/s"]
    for k, run in figures["instances"].items():
        lines.append(f"  {k} mapper(s): {run['msg_per_s']:8,} msg/s  ({run['seconds']} s, "
                     f"{run['ratio_to_ceiling']:.2f} x one core)")
    _emit(figures, as_json, lines)


@bench.command("roundtrip")
@click.option("--rate", "rates", type=click.IntRange(1, 5000), multiple=True,
              default=(100, 500), show_default=True,
              help="Offered rate in msg/s (repeat for several runs).")
@click.option("--seconds", type=click.FloatRange(1, 600), default=10.0, show_default=True,
              help="How long each rate is offered.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_roundtrip(rates: tuple[int, ...], seconds: float, as_json: bool) -> None:
    """MLLP in -> Kafka -> NEWS2 function -> Kafka -> MLLP out, at steady offered rates.

    \b
    Per rate: the time from each vitals message's inbound ACK to its NEWS2 ORU^R01's
    arrival at a local EHR (p50, p99, max), and the rate results came back at.
    Uses KAFKA_BOOTSTRAP_SERVERS or starts a local broker.
    """

    from gateway.roundtrip_bench import read_sample, run_roundtrip_bench

    with kafka_for_bench() as bootstrap:
        figures = asyncio.run(run_roundtrip_bench(bootstrap, rates, seconds,
                                                  read_sample()))
    lines = [f"round trip, vitals ORU^R01 in -> NEWS2 ORU^R01 out, {seconds:g} s per rate, "
             f"{figures['cores']} cores (inbound ACK -> arrival at the EHR):"]
    for rate, r in figures["rates"].items():
        lines.append(f"  offered {int(rate):5d} msg/s: returned {r['returned']}/{r['sent']}"
                     f" at {r['achieved_msg_per_s']:7.1f} msg/s  p50 {r['p50_ms']:7.1f} ms"
                     f"  p99 {r['p99_ms']:7.1f} ms  max {r['max_ms']:7.1f} ms")
    _emit(figures, as_json, lines)


@bench.command("search")
@click.option("--rows", type=click.IntRange(min=1000), default=500_000, show_default=True,
              help="Messages in the spool searched.")
@click.option("--dir", "folder", type=click.Path(exists=True, file_okay=False, writable=True,
                                                 path_type=Path),
              help="Folder for the bench's spool (removed after).  [default: temp folder]")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_search(rows: int, folder: Path | None, as_json: bool) -> None:
    """Search times per query kind, event-loop stalls, and the search indexer's cost."""
    import tempfile

    from gateway.search_bench import lines, run

    figures = run(rows, (folder or Path(tempfile.gettempdir())).resolve())
    _emit(figures, as_json, lines(figures))
