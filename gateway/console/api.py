"""The JSON admin API under ``/api/v1``: the console's data for scripts and tools.

Authenticated with ``Authorization: Bearer <token>`` (a browser session works too, with
its CSRF token in ``X-CSRF-Token`` for changes). Bodies and replays need the operator
role and are audited; everything else is metadata a viewer may read.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.console.core import (
    Console,
    Denied,
    filter_from_json,
    message_json,
    parse_query,
    rejected_json,
)
from gateway.console.mapview import AUTO, map_text, pick_profile
from gateway.spool import MessageFilter
from mappers.errors import Hl7gwError

MAX_PLAYGROUND_BYTES = 1024 * 1024


def _page(rows: list[Any], limit: int) -> int | None:
    """``before`` for the next (older) page, or None when this page is the last."""
    return rows[-1].id if len(rows) == limit and rows else None


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise Denied(400, "the request body must be JSON") from None


def build_api(console: Console) -> APIRouter:
    """Routes for ``/api/v1``; errors become ``{"error": ...}`` (see ``mount_console``)."""
    api = APIRouter(prefix="/api/v1")
    spool = console.runtime.spool

    @api.get("/messages")
    async def messages(request: Request) -> dict[str, Any]:
        """Accepted messages, newest first: sender, type, status, control_id, since, until."""
        console.require(request, "viewer")
        q = parse_query(request.query_params)
        rows = await spool.find(q.filter, limit=q.limit, before_id=q.before)
        return {"messages": [message_json(r) for r in rows],
                "next_before": _page(rows, q.limit)}

    @api.get("/messages/{row_id}")
    async def message(request: Request, row_id: int) -> dict[str, Any]:
        """One message's metadata."""
        console.require(request, "viewer")
        return message_json(await console.message(row_id))

    @api.get("/messages/{row_id}/body")
    async def message_body(request: Request, row_id: int) -> dict[str, Any]:
        """Raw text, ACK and the Bundle as mapped now (operator; audited)."""
        caller = console.require(request, "operator")
        body = await console.body(request, caller, row_id)
        return {**body, "mapping": body["mapping"].as_json()}

    @api.post("/messages/{row_id}/replay")
    async def replay_one(request: Request, row_id: int) -> JSONResponse:
        """Publish one published or failed message again (operator; audited)."""
        caller = console.require(request, "operator")
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        info = await console.message(row_id)
        if info.status == "pending":
            raise Denied(409, f"message {row_id} is pending already; nothing to replay")
        ids = await console.replay(request, caller, MessageFilter(ids=(row_id,)))
        return JSONResponse({"replayed": ids}, status_code=202)

    @api.post("/replay")
    async def replay(request: Request) -> JSONResponse:
        """Replay every published/failed message matching a filter (operator; audited)."""
        caller = console.require(request, "operator")
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        ids = await console.replay(request, caller, filter_from_json(await _json_body(request)))
        return JSONResponse({"replayed": ids}, status_code=202)

    @api.get("/rejected")
    async def rejected(request: Request) -> dict[str, Any]:
        """Refused messages, newest first: sender, control_id, since, until."""
        console.require(request, "viewer")
        q = parse_query(request.query_params)
        rows = await spool.find_rejected(q.filter, limit=q.limit, before_id=q.before)
        return {"rejected": [rejected_json(r) for r in rows],
                "next_before": _page(rows, q.limit)}

    @api.get("/rejected/{row_id}")
    async def rejected_one(request: Request, row_id: int) -> dict[str, Any]:
        """One refused message's metadata."""
        console.require(request, "viewer")
        return rejected_json(await console.rejected(row_id))

    @api.get("/rejected/{row_id}/body")
    async def rejected_body(request: Request, row_id: int) -> dict[str, Any]:
        """A refused message's raw text and NAK (operator; audited)."""
        caller = console.require(request, "operator")
        body = await console.rejected_body(request, caller, row_id)
        return {**body, "mapping": body["mapping"].as_json()}

    @api.post("/rejected/{row_id}/reprocess")
    async def reprocess(request: Request, row_id: int) -> dict[str, Any]:
        """Feed a refused message through its listener's intake again (operator; audited)."""
        caller = console.require(request, "operator")
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        return await console.reprocess(request, caller, row_id)

    @api.post("/playground")
    async def playground(request: Request) -> dict[str, Any]:
        """Map pasted text: ``{"text": ..., "profile": "auto" | "" | name}``."""
        caller = console.require(request, "viewer")
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise Denied(400, 'send {"text": "<HL7 message>", "profile": "auto"}')
        text: str = body["text"]
        if len(text.encode()) > MAX_PLAYGROUND_BYTES:
            raise Denied(400, "the playground maps messages up to 1 MiB")
        profiles, _, _ = console.profile_state()
        choice = str(body.get("profile", AUTO))
        try:
            profile = pick_profile(profiles, text, choice)
        except Hl7gwError as exc:
            raise Denied(400, str(exc)) from None
        view = map_text(text, profile=profile,
                        fallback_tz=console.runtime.settings.default_timezone, explain=True)
        return view.as_json()

    @api.get("/profiles")
    async def profiles(request: Request) -> dict[str, Any]:
        """Live profile names and matches, and the last reload error."""
        console.require(request, "viewer")
        return console.profiles_json()

    @api.get("/dashboard")
    async def dashboard(request: Request) -> dict[str, Any]:
        """Row counts and the sampled series (rates per second, levels)."""
        console.require(request, "viewer")
        return {"counts": await spool.counts(), "series": console.sampler.series()}

    @api.get("/audit")
    async def audit(request: Request) -> dict[str, Any]:
        """The latest audit entries, newest first (operator)."""
        console.require(request, "operator")
        return {"entries": console.audit.latest(200)}

    return api
