"""``/healthz``, ``/readyz`` and ``/metrics`` for the bridge and the function.

The same three routes the gateway serves (``gateway/app.py``), with the same meaning:

- ``GET /healthz``: liveness, 200 while the process and its event loop answer;
- ``GET /readyz``: 200 ``{"status": "ready", ...}`` when the process does its work now,
  else 503 ``{"status": "not ready", ...}``; the details say why (each process decides
  what ready means: :meth:`connectors.bridge.Bridge.readiness`, the function's app);
- ``GET /metrics``: the Prometheus text exposition of the process's registry.

:class:`ProbeServer` serves them on a port of their own (the bridge has no other HTTP
face); the function adds them to its app. The server binds its socket itself, so a taken
port is one clear error naming the setting, and it leaves SIGINT/SIGTERM to the process's
runner instead of installing uvicorn's handlers.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from connectors.errors import ConnectorError

if TYPE_CHECKING:  # uvicorn only where a probe server runs: the function's app never does
    from hl7gw.http_server import QuietServer

Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


def add_probe_routes(app: FastAPI, readiness: Readiness, registry: CollectorRegistry) -> None:
    """Add ``/healthz``, ``/readyz`` and ``/metrics`` to ``app``."""

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process and its event loop answer."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: 200 when the process does its work now, else 503 with reasons."""
        ready, details = await readiness()
        return JSONResponse({"status": "ready" if ready else "not ready", **details},
                            status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def probe_app(readiness: Readiness, registry: CollectorRegistry, *, title: str) -> FastAPI:
    """An app with only the three probe routes."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    add_probe_routes(app, readiness, registry)
    return app


class ProbeServer:
    """Serves an app on ``host:port`` in the running loop; ``start()`` then ``stop()``."""

    def __init__(self, app: FastAPI, host: str, port: int, *, setting: str) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._setting = setting  # named in a bind error, e.g. "bridge.http.port"
        self._server: QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None  # the bound port (port 0: the one the OS chose)

    async def start(self) -> None:
        """Bind and start serving; raises :class:`ConnectorError` when the port is taken."""
        try:
            sock = socket.create_server((self._host, self._port))
        except OSError as exc:
            raise ConnectorError(f"cannot listen on {self._host}:{self._port} for /healthz, "
                                 f"/readyz and /metrics ({exc.strerror or exc}); change "
                                 f"{self._setting}") from None
        self.port = int(sock.getsockname()[1])
        import uvicorn

        from hl7gw.http_server import QuietServer

        config = uvicorn.Config(self._app, log_config=None, access_log=False, lifespan="off")
        self._server = server = QuietServer(config)  # the signals stay with the process
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="probe-http")
        while not server.started:
            if self._task.done():
                self._task.result()
                raise ConnectorError(f"the probe server on port {self.port} did not start")
            await asyncio.sleep(0.01)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop serving (open connections get ``grace`` seconds) and free the port."""
        if self._server is None or self._task is None:
            return
        from hl7gw.http_server import stop_server

        await stop_server(self._server, self._task, grace)
        self._server = self._task = None
