"""``hl7gw bench pipeline``: MLLP in to Kafka acknowledged, through the real gateway.

A module of its own (registered into the ``bench`` group by ``gateway/cli/bench.py``):
the figures come from :mod:`gateway.pipeline_bench`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from gateway.cli.common import COUNT


@click.command("pipeline")
@click.option("-n", "count", type=COUNT, default=5000, show_default=True,
              help="Messages to send (each with its own MSH-10).")
@click.option("--connections", type=COUNT, default=8, show_default=True,
              help="Concurrent MLLP senders, each waiting for its ACK.")
@click.option("--sample", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("samples/adt_a01.hl7"), show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_pipeline(count: int, connections: int, sample: Path, as_json: bool) -> None:
    """MLLP -> spool -> ACK -> map -> Kafka acked: msg/s and lags through the real gateway.

    \b
    ACKed msg/s (first send to last ACK) and ACK latency; published msg/s (first send
    to the last row the spool marked published after the broker's ack) and the publish
    lag (each message's ACK to that mark; also to the record's broker append time);
    records read back from the topic, duplicates and missing ones; CPU time per message
    of the gateway, its mapping workers, the senders and a broker on this machine, and
    the most msg/s their sum allows on its cores.
    Uses KAFKA_BOOTSTRAP_SERVERS or starts a local broker; a fresh topic each run.
    """
    from gateway.cli.bench import _emit, kafka_for_bench
    from gateway.mllp.client import split_messages
    from gateway.pipeline_bench import run_pipeline_bench
    from gateway.pipeline_figures import text_lines

    message = split_messages(sample.read_bytes())[0]
    with kafka_for_bench() as bootstrap, \
            click.progressbar(length=count, label="published", file=sys.stderr) as bar:
        done = 0

        def progress(published: int) -> None:
            nonlocal done
            bar.update(published - done)
            done = published

        figures = asyncio.run(run_pipeline_bench(bootstrap, message, count, connections,
                                                 progress=progress))
    _emit(figures, as_json, text_lines(figures, sample.name))
