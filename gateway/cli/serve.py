"""``hl7gw serve``: the gateway daemon (MLLP listeners, spool, publisher, HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gateway.cli.common import (
    PORT,
    config_option,
    load_config,
    run_until_signal,
)


@click.command()
@config_option()
@click.option("--mllp-port", type=PORT, help="Override the first listener's port.")
@click.option("--http-port", type=PORT, help="Override the health/metrics HTTP port.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve(config: Path, mllp_port: int | None, http_port: int | None, log_level: str) -> None:
    """Run the gateway: MLLP listeners, durable spool, Kafka publisher, /healthz /metrics.

    \b
    SIGTERM or Ctrl-C: stops accepting, answers the frames in flight and publishes what
    it can within drain_timeout_s (8 s); the rest stays in the spool for the next start.
    Exit 0; a second signal, or still running 2 s past the deadline: exit 130/143 at once.
    """
    from gateway.logs import configure_logging
    from gateway.service import GatewayService

    configure_logging(log_level)
    settings = load_config(config)
    settings = _override_ports(settings, mllp_port, http_port)
    from connectors import tracing

    tracing.configure(settings.tracing, service_name="hl7gw-gateway")  # off: a no-op
    service = GatewayService(settings)

    async def start() -> None:
        await service.start()
        ports = ", ".join(f"{ls.settings.name}={ls.port}" for ls in service.listeners)
        click.echo(f"gateway ready: MLLP {ports}; HTTP {service.http_port}", err=True)

    try:
        run_until_signal("hl7gw serve", start, service.stop, drain_s=settings.drain_timeout_s)
    finally:
        tracing.shutdown()  # the spans still buffered go out


def _override_ports(settings: Any, mllp_port: int | None, http_port: int | None) -> Any:
    update: dict[str, Any] = {}
    if mllp_port is not None:
        first = settings.listeners[0].model_copy(update={"port": mllp_port})
        update["listeners"] = [first, *settings.listeners[1:]]
    if http_port is not None:
        update["http"] = settings.http.model_copy(update={"port": http_port})
    return settings.model_copy(update=update) if update else settings
