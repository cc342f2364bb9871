"""``hl7gw dev``: a local Kafka broker and the whole pipeline, for development."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gateway.cli.common import (
    PEER_PORT,
    PORT,
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
    """Start a single-node Apache Kafka (KRaft) from Maven Central jars until Ctrl-C.

    \b
    SIGTERM or Ctrl-C (also mid-start): the broker's controlled shutdown, SIGKILL if it
    still runs 6 s later; exit 0. A second signal: exit 130/143 at once.
    """
    from gateway.dev.kafka import STOP_S, run_broker
    from hl7gw.shutdown import run_command

    run_command("hl7gw dev kafka", lambda shutdown: run_broker(port, data, shutdown),
                drain_s=STOP_S + 1.0)


@dev.command("up")
@config_option(default=Path("samples/gateway.yaml"))
@click.option("--samples", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("samples"), show_default=True, help="Folder of *.hl7 to send.")
@click.option("--once", is_flag=True, help="Exit after showing the results (for scripts).")
@click.option("--mllp-port", type=PORT, help="Override the first listener's port.")
@click.option("--http-port", type=PORT, help="Override the gateway's HTTP (console) port.")
@click.option("--function-port", type=PEER_PORT,
              help="Override the function's port (the bridge delivers to it).")
def dev_up(config: Path, samples: Path, once: bool, mllp_port: int | None,
           http_port: int | None, function_port: int | None) -> None:
    """Run Kafka, gateway, bridge and function locally; send the samples; show results.

    \b
    Kafka: KAFKA_BOOTSTRAP_SERVERS if set, else a broker started for the run.
    Ctrl-C or SIGTERM: everything stops within drain_timeout_s + 2 s (10 s); exit 0.
    A second signal: exit 130/143 at once.
    """
    from gateway.cli.serve import _override_ports
    from gateway.dev.up import run_dev_up
    from hl7gw.shutdown import run_command

    settings = _override_ports(load_config(config), mllp_port, http_port)
    if function_port is not None:
        settings = _with_function_port(settings, function_port)
    run_command("hl7gw dev up",
                lambda shutdown: run_dev_up(settings, samples, shutdown, once=once),
                drain_s=settings.drain_timeout_s)


def _with_function_port(settings: Any, port: int) -> Any:
    """The function on ``port``, and the bridge delivering to it."""
    fn = settings.function.model_copy(update={"port": port})
    update: dict[str, Any] = {"function": fn}
    if settings.bridge is not None:
        update["bridge"] = settings.bridge.model_copy(
            update={"target_url": f"http://{fn.host}:{port}/events"})
    return settings.model_copy(update=update)
