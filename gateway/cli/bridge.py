"""``hl7gw bridge``: Kafka to the function target."""

from __future__ import annotations

import asyncio
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
    """Consume FHIR events from Kafka and deliver them to the function target."""
    from connectors.bridge import run_bridge
    from gateway.logs import configure_logging

    configure_logging(log_level)
    settings = load_config(config)
    if settings.bridge is None:
        fail(f"{config}: no 'bridge:' section; add one with target_url")
    asyncio.run(run_bridge(settings.bridge, settings.kafka))
