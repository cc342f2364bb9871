"""The web console's HTML pages: server-rendered Jinja2, usable without JavaScript.

Every page but the login form declares its role (``Viewer``/``Operator``), checked before
the page's code runs (a session cookie from ``/console/login``, or a bearer token); a
missing login redirects to the login form, a missing role gets a 403 page, a parameter
that cannot be used (a row id beyond 64 bits) a 400 page saying which and why. Forms
that change something (replay, reprocess, logout) carry the session's CSRF token and must
come from this origin; the session cookie is also ``SameSite=Strict``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.console.api import MAX_PLAYGROUND_BYTES, RowIdPath
from gateway.console.auth import (
    NO_USERS,
    audit_sign_in,
    set_session_cookie,
    start_session,
)
from gateway.console.core import COOKIE, Caller, Console, Denied, peer_of, same_origin
from gateway.console.dashboard import charts
from gateway.console.deps import Operator, Viewer
from gateway.console.filters import parse_query
from gateway.console.hl7view import segments
from gateway.console.mapview import AUTO, NONE, map_text, parse_summary, pick_profile
from gateway.console.schemas import MAX_ROW_ID, STATUSES
from gateway.console.search import search_context
from gateway.console.session_store import SessionStoreError
from gateway.spool import MessageFilter
from mappers.errors import Hl7gwError

TEMPLATES = Path(__file__).parent / "templates"


def _ts(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "none pending"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def make_environment() -> Environment:
    """Jinja2 with autoescaping on for every template (values are escaped, always)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["ts"] = _ts
    env.filters["age"] = _age
    return env


def build_pages(console: Console) -> APIRouter:
    """Routes for ``/console``."""
    pages = APIRouter(prefix="/console")
    env = make_environment()
    spool = console.runtime.spool

    def render(name: str, request: Request, caller: Caller | None, status: int = 200,
               **context: Any) -> HTMLResponse:
        context.update(user=caller.user if caller else None,
                       csrf=caller.session.csrf if caller and caller.session else "",
                       path=request.url.path)
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    async def form(request: Request) -> dict[str, str]:
        data = await request.form()
        return {k: v for k, v in data.items() if isinstance(v, str)}

    # -- login ----------------------------------------------------------------------------

    @pages.get("/login")
    async def login_form(request: Request, next: str = "/console") -> HTMLResponse:
        problem = None if console.users.configured else NO_USERS
        return render("login.html", request, None, next=_safe_next(next), problem=problem,
                      oidc=console.settings.oidc)

    @pages.post("/login", response_model=None)
    async def login(request: Request) -> Response:
        data = await form(request)
        target = _safe_next(data.get("next", "/console"))
        oidc = console.settings.oidc
        if not console.users.configured:
            return render("login.html", request, None, 403, next=target, problem=NO_USERS,
                          oidc=oidc)
        if not same_origin(request):
            return render("login.html", request, None, 403, next=target, oidc=oidc,
                          problem="refused: the login form must be sent from this console")
        user = console.users.authenticate(data.get("token", "").strip())
        if user is None:
            await audit_sign_in(console.audit, action="login_failed", user="", role="",
                                peer=peer_of(request), method="token")
            return render("login.html", request, None, 401, next=target, oidc=oidc,
                          problem="That token is not valid.")
        try:  # a new login, a new session id
            session = await start_session(console.sessions, console.audit, user,
                                          method="token", peer=peer_of(request),
                                          replacing=request.cookies.get(COOKIE))
        except SessionStoreError as exc:
            return render("login.html", request, None, 503, next=target, oidc=oidc,
                          problem=f"refused: {exc}")
        response = RedirectResponse(target, status_code=303)
        set_session_cookie(response, request, session, console.sessions.lifetime_s)
        return response

    @pages.post("/logout")
    async def logout(request: Request, caller: Viewer) -> RedirectResponse:
        console.check_write(request, caller, (await form(request)).get("csrf"))
        if caller.session is not None:
            await asyncio.to_thread(console.sessions.drop, caller.session.id)
            await audit_sign_in(console.audit, action="logout", user=caller.user.name,
                                role=caller.user.role, peer=peer_of(request),
                                method=caller.session.method)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- dashboard ------------------------------------------------------------------------

    @pages.get("")
    async def dashboard(request: Request, caller: Viewer) -> HTMLResponse:
        counts = await spool.counts()
        oldest = await spool.pending(limit=1)
        age = time.time() - oldest[0].received_at if oldest else None
        series = console.sampler.series()
        bridge = console.runtime.settings.bridge
        latest = console.sampler.samples[-1] if console.sampler.samples else None
        traffic = await console.sampler.history()  # from the spool: survives a restart
        return render("dashboard.html", request, caller, counts=counts, oldest_age=age,
                      interval_s=f"{console.sampler.interval_s:g}",
                      bridge=f"group {bridge.group_id}" if bridge else None,
                      consumer_lag=latest.consumer_lag if latest else None,
                      charts=charts(series, traffic), profiles=console.profiles_json(),
                      kafka=console.runtime.publisher.connected, alerts=console.alerts())

    # -- messages -------------------------------------------------------------------------

    @pages.get("/messages")
    async def messages(request: Request, caller: Viewer) -> HTMLResponse:
        # listing and search in one (gateway/console/search.py): q and kind, audited
        context = await search_context(console, request, caller)
        return render("messages.html", request, caller, statuses=STATUSES, **context)

    @pages.get("/messages/{row_id}")
    async def message(request: Request, row_id: RowIdPath, caller: Viewer,
                      show: str = "") -> HTMLResponse:
        info = await console.message(row_id)
        body = None
        if show == "body":
            if not caller.user.may("operator"):
                raise Denied(403, "viewers may not see message bodies; it needs the "
                                  "operator role")
            body = await console.body(request, caller, row_id)
            body["segments"] = segments(body["raw"])
        notice = {"replayed": "Queued for replay: it is published again shortly.",
                  "pending": "The message is pending already; nothing to replay."
                  }.get(request.query_params.get("notice", ""))
        return render("message.html", request, caller, info=info, body=body, notice=notice,
                      summary=parse_summary(info.summary))

    @pages.post("/messages/{row_id}/replay")
    async def replay(request: Request, row_id: RowIdPath, caller: Operator
                     ) -> RedirectResponse:
        console.check_write(request, caller, (await form(request)).get("csrf"))
        await console.message(row_id)
        ids = await console.replay(request, caller, MessageFilter(ids=(row_id,)))
        notice = "replayed" if ids else "pending"
        return RedirectResponse(f"/console/messages/{row_id}?notice={notice}", status_code=303)

    # -- rejected -------------------------------------------------------------------------

    @pages.get("/rejected")
    async def rejected(request: Request, caller: Viewer) -> HTMLResponse:
        # the sender matched as the page shows it (APP, APP|FAC, APP|FAC^OID...)
        page = await _listing(request, "/console/rejected", spool.search.find_rejected)
        return render("rejected.html", request, caller, rows=page.rows, values=page.values,
                      older=page.older, problem=page.problem, newest=page.newest,
                      senders=await spool.search.rejected_senders())

    async def rejected_page(request: Request, caller: Caller, row_id: int, show: bool,
                            result: dict[str, Any] | None = None) -> HTMLResponse:
        info = await console.rejected(row_id)
        body = None
        if show:
            if not caller.user.may("operator"):
                raise Denied(403, "viewers may not see message bodies; it needs the "
                                  "operator role")
            body = await console.rejected_body(request, caller, row_id)
            body["segments"] = segments(body["raw"])
        return render("rejected_one.html", request, caller, info=info, body=body,
                      result=result)

    @pages.get("/rejected/{row_id}")
    async def rejected_one(request: Request, row_id: RowIdPath, caller: Viewer,
                           show: str = "", ack: str = "", status: str = "",
                           row: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None
                           ) -> HTMLResponse:
        result = None
        if ack:  # where a reprocess redirected to: what it gave (a reload resends nothing)
            new = {"status": status, "row_id": row} if status and row is not None else None
            result = {"id": row_id, "ack_code": ack, "result": new}
        return await rejected_page(request, caller, row_id, show == "body", result)

    @pages.post("/rejected/{row_id}/reprocess")
    async def reprocess(request: Request, row_id: RowIdPath, caller: Operator
                        ) -> RedirectResponse:
        console.check_write(request, caller, (await form(request)).get("csrf"))
        result = await console.reprocess(request, caller, row_id)
        params = {"ack": result["ack_code"] or ""}
        if result["result"] is not None:
            params |= {"status": result["result"]["status"],
                       "row": str(result["result"]["row_id"])}
        return RedirectResponse(f"/console/rejected/{row_id}?{urlencode(params)}",
                                status_code=303)

    # -- playground -----------------------------------------------------------------------

    def playground_page(request: Request, caller: Caller, text: str, choice: str,
                        status: int = 200) -> HTMLResponse:
        profiles, _, _ = console.profile_state()
        view, problem = None, None
        if len(text.encode()) > MAX_PLAYGROUND_BYTES:
            problem = "the playground maps messages up to 1 MiB"
        elif text.strip():
            try:
                profile = pick_profile(profiles, text, choice)
                view = map_text(text, profile=profile, explain=True,
                                fallback_tz=console.runtime.settings.default_timezone)
            except Hl7gwError as exc:
                problem = str(exc)
        return render("playground.html", request, caller, status, text=text, choice=choice,
                      names=profiles.names(), auto=AUTO, none=NONE, view=view,
                      problem=problem)

    @pages.get("/playground")
    async def playground(request: Request, caller: Viewer) -> HTMLResponse:
        return playground_page(request, caller, "", AUTO)

    @pages.post("/playground")
    async def playground_post(request: Request, caller: Viewer) -> HTMLResponse:
        data = await form(request)
        console.check_write(request, caller, data.get("csrf"))
        return playground_page(request, caller, data.get("text", ""),
                               data.get("profile", AUTO))

    # -- audit ----------------------------------------------------------------------------

    @pages.get("/audit")
    async def audit(request: Request, caller: Operator) -> HTMLResponse:
        entries = console.audit.latest(200)
        return render("audit.html", request, caller, entries=entries,
                      path_shown=str(console.audit.path),
                      as_json=lambda v: json.dumps(v, ensure_ascii=False))

    pages.add_api_route("/", dashboard, methods=["GET"], include_in_schema=False)
    return pages


def _safe_next(target: str) -> str:
    """Only console-local paths (and the API docs): a login must never redirect elsewhere."""
    if target == "/docs" or (target.startswith("/console") and not target.startswith("//")
                             and "\\" not in target):
        return target
    return "/console"


@dataclass(frozen=True)
class _Page:
    """One page of a listing: its rows, the filter as typed, links, or what was wrong."""

    rows: Sequence[Any]
    values: dict[str, str]
    older: str | None
    newest: str | None
    problem: str | None


async def _listing(request: Request, base: str,
                   find: Callable[..., Awaitable[Sequence[Any]]]) -> _Page:
    """Rows for the filter in the query string; a bad filter is shown, not raised."""
    try:
        q = parse_query(request.query_params)
    except Denied as exc:
        if exc.status != 400:
            raise
        return _Page([], dict(request.query_params), None, None, exc.message)
    rows = await find(q.filter, limit=q.limit, before_id=q.before)
    older = _url(base, q.values, rows[-1].id) if len(rows) == q.limit else None
    newest = _url(base, q.values, None) if q.before else None
    return _Page(rows, q.values, older, newest, None)


def _url(base: str, values: dict[str, str], before: int | None) -> str:
    params = {k: v for k, v in values.items() if v}
    if before is not None:
        params["before"] = str(before)
    return f"{base}?{urlencode(params)}" if params else base

