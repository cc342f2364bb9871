"""``hl7gw dev``: a local Kafka broker and the whole pipeline, for development."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.cli.common import (
    PEER_PORT,
    config_option,
    load_config,
)


@click.group()
def dev() -> None:
    """Local development helpers: a real Kafka broker and the whole pipeline."""


@dev.command("kafka")
@click.option("--port", type=PEER_PORT, help="Broker port (default: a free one).")
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path),
              help="Log directory to keep between runs (default: a temporary one).")
def dev_kafka(port: int | None, data: Path | None) -> None:
    """Start a single-node Apache Kafka (KRaft) from Maven Central jars until Ctrl-C."""
    from gateway.dev.kafka import run_broker

    sys.exit(run_broker(port, data))


@dev.command("up")
@config_option(default=Path("samples/gateway.yaml"))
@click.option("--samples", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("samples"), show_default=True, help="Folder of *.hl7 to send.")
@click.option("--once", is_flag=True, help="Exit after showing the results (for scripts).")
def dev_up(config: Path, samples: Path, once: bool) -> None:
    """Run Kafka, gateway, bridge and function locally; send the samples; show results."""
    from gateway.dev.up import run_dev_up

    settings = load_config(config)
    sys.exit(run_dev_up(settings, samples, once=once))
