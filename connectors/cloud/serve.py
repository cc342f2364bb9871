"""Serving the function app locally with uvicorn (``hl7gw function serve --port N``).

A stop (SIGINT/SIGTERM, handled by :mod:`hl7gw.shutdown`) closes the listening socket at
once and gives the requests in flight ``drain_s`` seconds to be answered; a request cut
off after that was not answered, so the bridge delivers its event again.
"""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn

from connectors.cloud.app import create_app
from connectors.cloud.processor import Processor
from connectors.settings import FunctionSettings
from hl7gw.http_server import QuietServer, stop_server
from hl7gw.shutdown import DEFAULT_DRAIN_S, Shutdown, serve_until_stopped


def function_server(port: int, host: str = "127.0.0.1", *, processor: Processor | None = None,
                    settings: FunctionSettings | None = None,
                    log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for the function app, not yet started (it installs no signal
    handlers: whoever runs it stops it)."""
    app = create_app(processor, settings=settings)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
    return QuietServer(config)


async def serve_function(port: int, host: str = "127.0.0.1", *,
                         processor: Processor | None = None,
                         settings: FunctionSettings | None = None,
                         shutdown: Shutdown | None = None,
                         drain_s: float = DEFAULT_DRAIN_S) -> None:
    """Serve until SIGINT/SIGTERM (``shutdown``'s, else handled here until this returns)."""
    server = function_server(port, host, processor=processor, settings=settings)
    own = Shutdown("hl7gw function serve", drain_s) if shutdown is None else None
    with own or contextlib.nullcontext():
        stop = own or shutdown
        assert stop is not None
        serving = asyncio.create_task(server.serve(), name="function-http")
        stopping = asyncio.create_task(stop.wait(), name="function-stop")
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if serving.done():
            serving.result()  # a bind error (uvicorn logs it and raises SystemExit)
            return
        # Leave a moment for the process to exit within hl7gw.shutdown's deadline.
        await stop_server(server, serving, max(drain_s - 1.0, 0.5))


def run_function(port: int, host: str = "127.0.0.1", *, processor: Processor | None = None,
                 settings: FunctionSettings | None = None,
                 drain_s: float = DEFAULT_DRAIN_S) -> None:
    """:func:`serve_function` as the command line runs it; exits the process when done."""
    serve_until_stopped(
        "hl7gw function serve",
        lambda shutdown: serve_function(port, host, processor=processor, settings=settings,
                                        shutdown=shutdown, drain_s=drain_s),
        drain_s=drain_s)
