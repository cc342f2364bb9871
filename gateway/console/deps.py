"""Who may call a console or API route, declared in its signature.

A route that takes ``caller: Viewer`` or ``caller: Operator`` runs only for a caller with
that role (operator includes viewer); anyone else gets ``Denied`` (401 or 403) before the
route's code runs. Declaring the role as a dependency, rather than a call inside the body,
lets a test list every route with its role (``role_of``) and fail on one that has none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from starlette.routing import BaseRoute

from gateway.console.core import Caller, Console


def console_of(request: Request) -> Console:
    """The console mounted on this request's app (``mount_console`` puts it there)."""
    console: Console = request.app.state.console
    return console


async def require_viewer(request: Request) -> Caller:
    """The caller, if they may view (viewer or operator); Denied(401/403) otherwise."""
    return console_of(request).require(request, "viewer")


async def require_operator(request: Request) -> Caller:
    """The caller, if they are an operator; Denied(401/403) otherwise."""
    return console_of(request).require(request, "operator")


Viewer = Annotated[Caller, Depends(require_viewer)]
Operator = Annotated[Caller, Depends(require_operator)]

ROLE_CHECKS: dict[Callable[..., Any], str] = {require_viewer: "viewer",
                                              require_operator: "operator"}


def role_of(route: BaseRoute) -> str | None:
    """The role a route's dependencies demand (the highest), or None when it has none."""
    dependant: Dependant | None = getattr(route, "dependant", None)
    if dependant is None:
        return None
    found = [ROLE_CHECKS[d.call] for d in _walk(dependant) if d.call in ROLE_CHECKS]
    return max(found, key=("viewer", "operator").index) if found else None


def _walk(dependant: Dependant) -> list[Dependant]:
    out: list[Dependant] = []
    for dep in dependant.dependencies:
        out.append(dep)
        out += _walk(dep)
    return out
