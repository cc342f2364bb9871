"""``hl7gw function``: the sample cloud function, served locally."""

from __future__ import annotations

import click

from gateway.cli.common import PORT, SECONDS


@click.group()
def function() -> None:
    """The sample cloud function (FastAPI; AWS Lambda handler connectors.cloud:handler)."""


@function.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=PORT, default=8090, show_default=True)
@click.option("--drain-timeout", "drain_s", type=SECONDS, default=8.0, show_default=True,
              help="On SIGTERM/Ctrl-C: seconds the requests in flight get to be answered.")
@click.option("--processor", type=click.Choice(["memory", "fhir", "alert", "news2"]),
              envvar="HL7GW_PROCESSOR", default="memory", show_default=True,
              help="What the function does with each event (docs: README, Processors); "
                   "its settings come from the same environment variables as in Lambda.")
def function_serve(host: str, port: int, drain_s: float, processor: str) -> None:
    """Serve the function app locally: POST /events, GET /events to read back.

    \b
    SIGTERM or Ctrl-C: stops accepting, answers the requests in flight within
    --drain-timeout; exit 0. A second signal, or still running 2 s past the deadline:
    exit 130/143 at once (an unanswered event is delivered again by the bridge).
    """
    import os

    from connectors.cloud.select import processor_from_env
    from connectors.cloud.serve import run_function

    try:
        chosen = processor_from_env({**os.environ, "HL7GW_PROCESSOR": processor})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    run_function(port=port, host=host, drain_s=drain_s, processor=chosen)
