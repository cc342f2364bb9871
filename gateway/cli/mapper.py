"""``hl7gw mapper``: a scale-out mapping process (Kafka consumer group), see docs/scale-out.md."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from gateway.cli.common import PORT, config_option, fail, load_config, run_until_signal


@click.command()
@config_option()
@click.option("--http-port", type=PORT,
              help="Override scale_out.http.port (/healthz /readyz /metrics; 0: any free).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def mapper(config: Path, http_port: int | None, log_level: str) -> None:
    """Map raw messages from scale_out.raw_topic and publish the FHIR events.

    Run as many as the load needs, on any machines: they form one Kafka consumer group
    (scale_out.group_id) and share the raw topic's partitions. The gateway must run with the
    same config's scale_out section, so it publishes raw messages instead of mapping them.
    """
    import uvicorn

    from gateway.logs import configure_logging
    from gateway.profiles import ProfileStore
    from gateway.scaleout import MapperService, create_mapper_app
    from hl7gw.http_server import QuietServer, stop_server

    configure_logging(log_level)
    settings = load_config(config)
    if settings.scale_out is None:
        fail(f"{config}: no 'scale_out:' section; add one (docs/scale-out.md) to run mappers")
    so = settings.scale_out
    http = so.http if http_port is None else so.http.model_copy(update={"port": http_port})
    service = MapperService(so, settings.kafka, profiles=ProfileStore(settings.profiles))
    server = QuietServer(uvicorn.Config(create_mapper_app(service), host=http.host,
                                           port=http.port, log_config=None, access_log=False))
    tasks: list[asyncio.Task[Any]] = []

    async def start() -> None:
        tasks.append(asyncio.create_task(service.run(), name="mapper"))
        tasks.append(asyncio.create_task(server.serve(), name="http"))
        while not (service.started and server.started):
            for task in tasks:
                if task.done():
                    task.result()  # raises why it could not start
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else http.port
        click.echo(f"mapper ready: topic {so.raw_topic}, group {so.group_id}; HTTP {port}",
                   err=True)

    async def stop() -> None:
        """Finish the batch in hand (commit it), then the HTTP server; within the drain."""
        service.request_stop()
        if not tasks:
            return
        mapping, http_task = tasks
        _, late = await asyncio.wait([mapping], timeout=settings.drain_timeout_s)
        for task in late:
            task.cancel()
        await asyncio.gather(mapping, return_exceptions=True)
        await stop_server(server, http_task, 1.0)

    from connectors import tracing

    tracing.configure(settings.tracing, service_name="hl7gw-mapper")  # off: a no-op
    try:
        run_until_signal("hl7gw mapper", start, stop, drain_s=settings.drain_timeout_s)
    finally:
        tracing.shutdown()  # the spans still buffered go out
