"""Every console and API route declares who may call it; the API's description too.

A new route without ``Viewer``/``Operator`` in its signature fails here, unless it is put
on the public list below on purpose (probes, metrics, the login form).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount

from gateway.console.deps import Viewer, role_of
from tests.unit.gateway.console_app import VIEWER, app_only, bearer, running_app

PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
          ("GET", "/console/login"), ("POST", "/console/login"),
          ("GET", "/")}  # "/" only redirects to /console
PUBLIC_MOUNTS = {"/console/static"}  # CSS and the console's script: no data
OPERATOR_ONLY = {("GET", "/api/v1/messages/{row_id}/body"),
                 ("POST", "/api/v1/messages/{row_id}/replay"), ("POST", "/api/v1/replay"),
                 ("GET", "/api/v1/rejected/{row_id}/body"),
                 ("POST", "/api/v1/rejected/{row_id}/reprocess"), ("GET", "/api/v1/audit"),
                 ("POST", "/console/messages/{row_id}/replay"),
                 ("POST", "/console/rejected/{row_id}/reprocess"), ("GET", "/console/audit"),
                 ("GET", "/api/v1/outbound/{row_id}/body"),
                 ("POST", "/api/v1/outbound/{row_id}/replay"),
                 ("POST", "/console/outbound/{row_id}/replay"),
                 # work on many messages, raw download, diff (docs/bulk.md)
                 ("POST", "/api/v1/messages/bulk"), ("GET", "/api/v1/messages/{row_id}/diff"),
                 ("POST", "/console/messages/bulk"), ("POST", "/console/messages/bulk/confirm"),
                 ("GET", "/console/messages/{row_id}/raw"),
                 ("GET", "/console/messages/{row_id}/diff"),
                 # trying a profile shows message values (docs/profiles.md)
                 ("POST", "/api/v1/profiles/try"), ("GET", "/api/v1/profiles/try/{job_id}"),
                 ("POST", "/api/v1/profiles/try/{job_id}/apply"),
                 ("POST", "/api/v1/profiles/try/{job_id}/discard"),
                 ("GET", "/console/try"), ("POST", "/console/try"),
                 ("GET", "/console/try/{job_id}"), ("POST", "/console/try/{job_id}/apply"),
                 ("POST", "/console/try/{job_id}/discard"),
                 # dead letters: bodies and redrive (docs/alerts.md)
                 ("GET", "/api/v1/dead-letters/{partition}/{offset}/body"),
                 ("POST", "/api/v1/dead-letters/redrive"),
                 ("POST", "/console/dead-letters/redrive"),
                 ("GET", "/console/dead-letters/{partition}/{offset}")}


def every_route(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The app's routes, with included routers opened (newer FastAPI includes them lazily,
    as one entry holding the router; their routes carry the full path already)."""
    for route in routes:
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from every_route(router.routes)
        else:
            yield route


def routes_without_a_role(app: FastAPI) -> list[str]:
    """Every route that is neither public on purpose nor guarded by a role dependency."""
    missing = []
    for route in every_route(app.routes):
        if isinstance(route, Mount):
            if route.path not in PUBLIC_MOUNTS:
                missing.append(f"mount {route.path}")
            continue
        methods = getattr(route, "methods", None) or {"GET"}
        path = getattr(route, "path", repr(route))
        for method in sorted(methods - {"HEAD"}):
            if (method, path) not in PUBLIC and role_of(route) is None:
                missing.append(f"{method} {path}")
    return missing


def api_routes(app: FastAPI) -> list[tuple[str, str, str | None]]:
    return [(m, r.path, role_of(r)) for r in every_route(app.routes) if isinstance(r, APIRoute)
            for m in sorted((r.methods or set()) - {"HEAD"})]


def test_every_route_has_a_role_or_is_public_on_purpose(tmp_path: Path) -> None:
    app = app_only(tmp_path)
    assert routes_without_a_role(app) == []
    roles = {(m, p): role for m, p, role in api_routes(app)}
    assert {k for k, role in roles.items() if role == "operator"} == OPERATOR_ONLY
    assert ("GET", "/openapi.json") in roles and ("GET", "/docs") in roles
    assert len(roles) > 30  # the list above is not vacuous


def test_the_check_catches_a_route_without_a_role(tmp_path: Path) -> None:
    app = app_only(tmp_path)

    @app.get("/api/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    @app.get("/api/v1/guarded")
    async def guarded(_: Viewer) -> dict[str, str]:
        return {}

    assert routes_without_a_role(app) == ["GET /api/v1/forgotten"]


def concrete(path: str) -> str:
    return path.replace("{row_id}", "1")


@pytest.mark.parametrize("who", [None, "guess"])
async def test_every_guarded_route_turns_strangers_away(tmp_path: Path, who: str | None
                                                        ) -> None:
    async with running_app(tmp_path) as (client, runtime, app):
        for method, path, role in api_routes(app):
            if role is None:
                continue
            headers = bearer(who) if who else {}
            answer = await client.request(method, concrete(path), headers=headers)
            if path.startswith("/api/") or path == "/openapi.json":
                assert answer.status_code == 401, (method, path, answer.text)
            else:  # a page: to the login form
                assert answer.status_code == 303, (method, path)
                assert answer.headers["location"].startswith("/console/login")
        assert not runtime.settings.console.audit_path.exists()


async def test_viewers_are_refused_every_operator_route(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, runtime, _):
        for method, path in sorted(OPERATOR_ONLY):
            answer = await client.request(method, concrete(path), headers=bearer(VIEWER))
            assert answer.status_code == 403, (method, path)
            assert "operator" in answer.text
        assert runtime.publisher.wakes == 0


async def test_the_api_description_needs_a_viewer(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, _, _):
        assert (await client.get("/openapi.json")).status_code == 401
        to_login = await client.get("/docs")
        assert to_login.status_code == 303
        assert to_login.headers["location"] == "/console/login?next=/docs"
        login = await client.post("/console/login", data={"token": VIEWER, "next": "/docs"})
        assert login.headers["location"] == "/docs"  # and back to the docs after the login
        assert (await client.get("/redoc")).status_code == 404
        schema = await client.get("/openapi.json", headers=bearer(VIEWER))
        assert schema.status_code == 200
        paths = schema.json()["paths"]
        assert "/api/v1/replay" in paths and "/openapi.json" not in paths
        # the declared shapes are in it: the strict replay body and the page of messages
        components = schema.json()["components"]["schemas"]
        assert {"ReplayRequest", "MessagePage", "ErrorOut"} <= set(components)
        docs = await client.get("/docs", headers=bearer(VIEWER))
        assert docs.status_code == 200 and "/openapi.json" in docs.text


async def test_without_the_console_there_is_no_api_description(tmp_path: Path) -> None:
    async with running_app(tmp_path, enabled=False, filled=False) as (client, _, _):
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert (await client.get(path, headers=bearer(VIEWER))).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
