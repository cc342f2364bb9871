"""The gateway's HTTP face: health, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class Runtime(Protocol):
    """What the HTTP app needs to know about the running gateway."""

    registry: CollectorRegistry

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details): ready when the spool is open and the listeners are bound."""
        ...


def create_app(runtime: Runtime) -> FastAPI:
    """Build the admin app for a running gateway."""
    app = FastAPI(title="hl7gw gateway", docs_url="/docs", redoc_url=None)

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

    return app
