"""The JSON admin API under ``/api/v1``: the console's data for scripts and tools.

Authenticated with ``Authorization: Bearer <token>`` (a browser session works too, with
its CSRF token in ``X-CSRF-Token`` for changes). Bodies and replays need the operator
role and are audited; everything else is metadata a viewer may read. Each route declares
its role (``Viewer``/``Operator``), what it takes (bounded path ids, ``parse_query``,
strict body models) and what it gives (``gateway.console.schemas``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from gateway.console.core import Console, Denied, message_json, rejected_json
from gateway.console.deps import Operator, Viewer
from gateway.console.filters import parse_query
from gateway.console.mapview import map_text, pick_profile
from gateway.console.schemas import (
    MAX_ROW_ID,
    AuditOut,
    BodyOut,
    DashboardOut,
    ErrorOut,
    MappingOut,
    MessageOut,
    MessagePage,
    PlaygroundRequest,
    ProfilesOut,
    RejectedOut,
    RejectedPage,
    ReplayedOut,
    ReplayRequest,
    ReprocessOut,
)
from gateway.spool import MessageFilter
from mappers.errors import Hl7gwError

MAX_PLAYGROUND_BYTES = 1024 * 1024

RowIdPath = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="a spool row id")]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 503)}


def _page(rows: list[Any], limit: int) -> int | None:
    """``before`` for the next (older) page, or None when this page is the last."""
    return rows[-1].id if len(rows) == limit and rows else None


def build_api(console: Console) -> APIRouter:
    """Routes for ``/api/v1``; errors become ``{"error": ...}`` (see ``mount_console``)."""
    api = APIRouter(prefix="/api/v1", responses=ERRORS)
    spool = console.runtime.spool

    @api.get("/messages", response_model=MessagePage)
    async def messages(request: Request, _: Viewer) -> dict[str, Any]:
        """Accepted messages, newest first: sender, type, status, control_id, since, until,
        limit (1-500), before (a row id: the page after ``next_before``)."""
        q = parse_query(request.query_params)
        rows = await spool.find(q.filter, limit=q.limit, before_id=q.before)
        return {"messages": [message_json(r) for r in rows],
                "next_before": _page(rows, q.limit)}

    @api.get("/messages/{row_id}", response_model=MessageOut)
    async def message(row_id: RowIdPath, _: Viewer) -> dict[str, Any]:
        """One message's metadata."""
        return message_json(await console.message(row_id))

    @api.get("/messages/{row_id}/body", response_model=BodyOut)
    async def message_body(request: Request, row_id: RowIdPath, caller: Operator
                           ) -> dict[str, Any]:
        """Raw text, ACK and the Bundle as mapped now (operator; audited)."""
        body = await console.body(request, caller, row_id)
        return {**body, "mapping": body["mapping"].as_json()}

    @api.post("/messages/{row_id}/replay", status_code=202, response_model=ReplayedOut)
    async def replay_one(request: Request, row_id: RowIdPath, caller: Operator
                         ) -> dict[str, Any]:
        """Publish one published or failed message again (operator; audited)."""
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        info = await console.message(row_id)
        if info.status == "pending":
            raise Denied(409, f"message {row_id} is pending already; nothing to replay")
        ids = await console.replay(request, caller, MessageFilter(ids=(row_id,)))
        return {"replayed": ids}

    @api.post("/replay", status_code=202, response_model=ReplayedOut)
    async def replay(request: Request, body: ReplayRequest, caller: Operator
                     ) -> dict[str, Any]:
        """Replay every published/failed message matching a filter (operator; audited).
        An empty filter is refused unless ``"all": true`` is sent."""
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        return {"replayed": await console.replay(request, caller, body.to_filter())}

    @api.get("/rejected", response_model=RejectedPage)
    async def rejected(request: Request, _: Viewer) -> dict[str, Any]:
        """Refused messages, newest first: sender, control_id, since, until, limit, before."""
        q = parse_query(request.query_params)
        rows = await spool.search.find_rejected(q.filter, limit=q.limit, before_id=q.before)
        return {"rejected": [rejected_json(r) for r in rows],
                "next_before": _page(rows, q.limit)}

    @api.get("/rejected/{row_id}", response_model=RejectedOut)
    async def rejected_one(row_id: RowIdPath, _: Viewer) -> dict[str, Any]:
        """One refused message's metadata."""
        return rejected_json(await console.rejected(row_id))

    @api.get("/rejected/{row_id}/body", response_model=BodyOut)
    async def rejected_body(request: Request, row_id: RowIdPath, caller: Operator
                            ) -> dict[str, Any]:
        """A refused message's raw text and NAK (operator; audited)."""
        body = await console.rejected_body(request, caller, row_id)
        return {**body, "mapping": body["mapping"].as_json()}

    @api.post("/rejected/{row_id}/reprocess", response_model=ReprocessOut)
    async def reprocess(request: Request, row_id: RowIdPath, caller: Operator
                        ) -> dict[str, Any]:
        """Feed a refused message through its listener's intake again (operator; audited)."""
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        return await console.reprocess(request, caller, row_id)

    @api.post("/playground", response_model=MappingOut)
    async def playground(request: Request, body: PlaygroundRequest, caller: Viewer
                         ) -> dict[str, Any]:
        """Map pasted text: ``{"text": ..., "profile": "auto" | "" | name}``; up to 1 MiB."""
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        if len(body.text.encode()) > MAX_PLAYGROUND_BYTES:
            raise Denied(400, "the playground maps messages up to 1 MiB")
        profiles, _, _ = console.profile_state()
        try:
            profile = pick_profile(profiles, body.text, body.profile)
        except Hl7gwError as exc:
            raise Denied(400, str(exc)) from None
        view = map_text(body.text, profile=profile,
                        fallback_tz=console.runtime.settings.default_timezone, explain=True)
        return view.as_json()

    @api.get("/profiles", response_model=ProfilesOut)
    async def profiles(_: Viewer) -> dict[str, Any]:
        """Live profile names and matches, and the last reload error."""
        return console.profiles_json()

    @api.get("/dashboard", response_model=DashboardOut)
    async def dashboard(_: Viewer) -> dict[str, Any]:
        """Row counts, the sampled series (rates per second, levels) and the last hour per
        minute from the spool (``history``: it survives a restart)."""
        history = asdict(await console.sampler.history())
        return {"counts": await spool.counts(), "series": console.sampler.series(),
                "history": history}

    @api.get("/audit", response_model=AuditOut)
    async def audit(_: Operator) -> dict[str, Any]:
        """The latest audit entries, newest first (operator)."""
        return {"entries": console.audit.latest(200)}

    return api
