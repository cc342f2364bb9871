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

EHR_STOP_S = 3.0  # the local EHR closes its connections; nothing to drain


@click.group()
def dev() -> None:
    """Local development helpers: a real Kafka broker, the whole pipeline, a local EHR."""


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


@dev.command("ehr")
@click.option("--port", type=PORT, required=True,
              help="Port to listen on (0: a free one, printed at start).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every address).")
@click.option("--ack", "ack", type=click.Choice(["AA", "AE", "AR", "none"]), default="AA",
              show_default=True,
              help="Answer to every message; none: never answer, keep the connection.")
@click.option("--delay-ms", type=click.IntRange(min=0), default=0, show_default=True,
              help="Milliseconds to wait before each answer (a slow EHR).")
def dev_ehr(port: int, host: str, ack: str, delay_ms: int) -> None:
    """Run a local EHR: receive HL7 v2 over MLLP, print each message, answer with an ACK.

    The other end of the return path (results sent back to the hospital): point the
    sender at it. Each message is printed with its segments one per line, then the ACK
    code sent. The ACK swaps sender and receiver, echoes MSH-10 in MSA-2 and carries an
    ERR segment on AE and AR; a frame without MSH is answered AR.

    \b
    Example: hl7gw dev ehr --port 2576 --ack AE --delay-ms 500
    Ctrl-C or SIGTERM: stops at once, exit 0 (a second signal: 130/143 at once).
    Scripted faults for tests (code sequences, stale ACKs, dropped connections):
    gateway.dev.ehr.LocalEhr, see docs/dev-ehr.md.
    """
    from gateway.dev.ehr import run_local_ehr
    from hl7gw.shutdown import serve_until_stopped

    serve_until_stopped(
        "hl7gw dev ehr",
        lambda shutdown: run_local_ehr(shutdown, host=host, port=port, ack=ack,
                                       delay_ms=delay_ms, out=click.echo),
        drain_s=EHR_STOP_S)


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
