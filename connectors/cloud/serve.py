"""Serving the function app locally with uvicorn (``hl7gw function serve --port N``)."""

from __future__ import annotations

import asyncio

import uvicorn

from connectors.cloud.app import create_app
from connectors.cloud.processor import Processor
from connectors.settings import FunctionSettings


def function_server(port: int, host: str = "127.0.0.1", *, processor: Processor | None = None,
                    settings: FunctionSettings | None = None,
                    log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for the function app, not yet started."""
    app = create_app(processor, settings=settings)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
    return uvicorn.Server(config)


async def serve_function(port: int, host: str = "127.0.0.1", *,
                         processor: Processor | None = None,
                         settings: FunctionSettings | None = None) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn installs the handlers on the main thread)."""
    await function_server(port, host, processor=processor, settings=settings).serve()


def run_function(port: int, host: str = "127.0.0.1", *, processor: Processor | None = None,
                 settings: FunctionSettings | None = None) -> None:
    """Blocking form of :func:`serve_function` for the command line."""
    asyncio.run(serve_function(port, host, processor=processor, settings=settings))
