"""The gateway's HTTP face: health, readiness, Prometheus metrics, and the console.

The console (``gateway.console``: web pages under ``/console``, JSON under ``/api/v1``) is
added when a console runtime is passed and ``console.enabled`` is true; its dashboard
sampler runs with the app's lifespan, so serve the app with ``lifespan="on"``.

Public without a login: ``/healthz``, ``/readyz``, ``/metrics`` (probes and Prometheus)
and the console's login form. The API's description (``/openapi.json``, ``/docs``)
needs a viewer, like the API itself; without the console there are no users, so it is
not served at all. Every request body is capped (``gateway.body_limit``) before a route
reads it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gateway.body_limit import MAX_BODY_BYTES, BodyLimit
from gateway.console import Console, ConsoleRuntime, mount_console
from gateway.console.deps import Viewer


class Runtime(Protocol):
    """What the HTTP app needs to know about the running gateway."""

    registry: CollectorRegistry

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details): ready when the spool is open and the listeners are bound."""
        ...


def create_app(runtime: Runtime, *, console: ConsoleRuntime | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """Build the admin app for a running gateway (with the console when ``console`` is set)."""
    mounted: list[Console] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for c in mounted:
            c.sampler.start()
        try:
            yield
        finally:
            for c in mounted:
                await c.sampler.stop()
                await c.trials.stop()
                c.sessions.close()  # the session file's connection

    app = FastAPI(title="hl7gw gateway", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process and its event loop answer."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: 200 when messages can be accepted durably, else 503 with reasons."""
        ready, details = await runtime.readiness()
        return JSONResponse({"status": "ready" if ready else "not ready", **details},
                            status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)

    if console is not None:
        added = mount_console(app, console, console.settings.console)
        if added is not None:
            mounted.append(added)

            @app.get("/", include_in_schema=False)
            async def root() -> RedirectResponse:
                """The console's dashboard is the front page."""
                return RedirectResponse("/console", status_code=307)

            _describe_api(app)

    app.add_middleware(BodyLimit, limit=max_body_bytes)  # outermost of ours: first to run
    return app


def _describe_api(app: FastAPI) -> None:
    """``/openapi.json`` and ``/docs`` (Swagger UI), for viewers: they list every route."""

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(_: Viewer) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs(_: Viewer) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API")
