"""``hl7gw function``: the sample cloud function, served locally."""

from __future__ import annotations

import click

from gateway.cli.common import PORT


@click.group()
def function() -> None:
    """The sample cloud function (FastAPI; AWS Lambda handler connectors.cloud:handler)."""


@function.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=PORT, default=8090, show_default=True)
def function_serve(host: str, port: int) -> None:
    """Serve the function app locally: POST /events, GET /events to read back."""
    from connectors.cloud import run_function

    run_function(port=port, host=host)
