"""``hl7gw bridge``: Kafka to the function target."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.common import (
    config_option,
    fail,
    load_config,
)


@click.command()
@config_option()
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def bridge(config: Path, log_level: str) -> None:
    """Consume FHIR events from Kafka and deliver them to the function target.

    \b
    SIGTERM or Ctrl-C: fetches no more, lets the events in flight be delivered within
    bridge.drain_timeout_s (8 s) and commits only the offsets of delivered events (the
    rest are delivered again after the restart). Exit 0; a second signal, or still
    running 2 s past the deadline: exit 130/143 at once.
    """
    from connectors.bridge import run_bridge
    from gateway.logs import configure_logging
    from hl7gw.shutdown import serve_until_stopped

    configure_logging(log_level)
    settings = load_config(config)
    if settings.bridge is None:
        fail(f"{config}: no 'bridge:' section; add one with target_url")
    from connectors import tracing

    tracing.configure(settings.tracing, service_name="hl7gw-bridge")  # off: a no-op
    try:
        bridge_settings = settings.bridge
        serve_until_stopped(
            "hl7gw bridge",
            lambda shutdown: run_bridge(bridge_settings, settings.kafka, shutdown),
            drain_s=bridge_settings.drain_timeout_s)
    finally:
        tracing.shutdown()  # the spans still buffered go out
