"""The gateway's web console and JSON admin API, on the gateway's HTTP port.

``mount_console`` adds ``/console`` (HTML pages), ``/console/static`` (CSS and a little
JavaScript, served locally: no CDN, works offline) and ``/api/v1`` (JSON) to the app, with
authentication, two roles and an audit log (see docs/console.md). With
``console.enabled: false`` none of these routes exist.

Refusals have one shape per face: ``{"error": "..."}`` for the API (and the OpenAPI
schema), an error page for the console. A parameter FastAPI cannot validate (``?before=``
beyond 64 bits, ``true`` where a row id belongs) is a 400 with the reason, not FastAPI's
422 and not a 500 from deeper down.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.middleware.base import RequestResponseEndpoint

from gateway.audit import AuditError
from gateway.config import ConsoleSettings
from gateway.console import bulk, dlq, interfaces, search, signin, trial
from gateway.console.api import build_api
from gateway.console.core import Console, ConsoleRuntime, Denied
from gateway.console.filters import REPLAY_HINT, describe_errors
from gateway.console.outbound import build_outbound_api, build_outbound_pages
from gateway.console.pages import build_pages, make_environment

STATIC = Path(__file__).parent / "static"

# Pages show patient data: no caching, no framing, scripts and styles from here only.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; frame-ancestors 'none'; "
                                "form-action 'self'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _is_console(path: str) -> bool:
    return path == "/console" or path.startswith(("/console/", "/api/v1/"))


def wants_json(path: str) -> bool:
    """True for the API and the OpenAPI schema: their refusals are JSON, not pages."""
    return path.startswith("/api/") or path == "/openapi.json"


def mount_console(app: FastAPI, runtime: ConsoleRuntime, settings: ConsoleSettings
                  ) -> Console | None:
    """Add the console and API routes to ``app``; None (and no routes) when disabled.

    The caller starts ``console.sampler`` with the app (lifespan) and stops it after.
    """
    if not settings.enabled:
        return None
    console = Console(runtime, settings)
    app.state.console = console  # what the Viewer/Operator dependencies check against
    env = make_environment()
    # features first: their fixed paths (``/messages/export``) win over ``/{row_id}``
    for feature in (signin, interfaces, search, bulk, trial, dlq):
        app.include_router(feature.build_router(console))
    app.include_router(build_api(console))
    app.include_router(build_outbound_api(console))
    app.include_router(build_outbound_pages(console))
    app.include_router(build_pages(console))
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")

    def error_page(request: Request, status: int, message: str) -> HTMLResponse:
        caller = console.caller(request)
        html = env.get_template("error.html").render(
            status=status, message=message, path=request.url.path,
            user=caller.user if caller else None,
            csrf=caller.session.csrf if caller and caller.session else "")
        return HTMLResponse(html, status_code=status)

    @app.exception_handler(Denied)
    async def denied(request: Request, exc: Denied) -> Response:
        if wants_json(request.url.path):
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return JSONResponse({"error": exc.message}, status_code=exc.status,
                                headers=headers)
        if exc.status == 401 and console.users.configured:
            target = quote(request.url.path, safe="/")
            return RedirectResponse(f"/console/login?next={target}", status_code=303)
        return error_page(request, exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        hint = REPLAY_HINT if request.url.path == "/api/v1/replay" else ""
        kind = request.headers.get("content-type", "")
        if wants_json(request.url.path) and "json" not in kind:  # e.g. curl -d without -H
            hint = (f"send the body as JSON, with Content-Type: application/json "
                    f"(not {kind or 'none'})")
        message = describe_errors(exc.errors(), hint=hint)
        if wants_json(request.url.path):
            return JSONResponse({"error": message}, status_code=400)
        return error_page(request, 400, message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        # Starlette's own refusals (no such page, a form field over 1 MiB) in our shapes
        if wants_json(request.url.path):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code,
                                headers=exc.headers)
        if _is_console(request.url.path):
            return error_page(request, exc.status_code, str(exc.detail))
        return await http_exception_handler(request, exc)

    @app.exception_handler(AuditError)
    async def audit_failed(request: Request, exc: AuditError) -> Response:
        message = f"refused: the audit log cannot be written ({exc})"
        if wants_json(request.url.path):
            return JSONResponse({"error": message}, status_code=503)
        html = env.get_template("error.html").render(status=503, message=message, user=None,
                                                     path="", csrf="")
        return HTMLResponse(html, status_code=503)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: RequestResponseEndpoint
                               ) -> Response:
        response = await call_next(request)
        if _is_console(request.url.path):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    return console


__all__ = ["Console", "ConsoleRuntime", "mount_console", "wants_json"]
