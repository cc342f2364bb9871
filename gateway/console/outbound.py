"""The console's view of the return path: outbound messages, their ACKs, and replay.

``/api/v1/outbound`` (viewer: metadata), ``/api/v1/outbound/{id}/body`` (operator,
audited: the message as sent and the ACK), ``POST /api/v1/outbound/{id}/replay``
(operator, audited), and the pages ``/console/outbound`` and ``/console/outbound/{id}``.
A gateway without an ``outbound:`` section answers 404 with what to configure.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel

from gateway.console.core import Caller, Console, Denied, iso
from gateway.console.deps import Operator, Viewer
from gateway.console.pages import make_environment
from gateway.console.schemas import MAX_ROW_ID
from gateway.outbound.service import OutboundService, ReplayError
from gateway.spool.outbound import OutboundRow

RowIdPath = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="an outbound row id")]
STATUSES = ("queued", "sent", "failed")
NOT_CONFIGURED = ("this gateway sends nothing back: add an outbound: section with "
                  "destinations to its config (docs/outbound.md)")


class OutboundOut(BaseModel):
    """An outbound message's metadata (no body)."""

    id: int
    queued_at: str | None
    destination: str
    event_id: str
    causation_id: str | None
    message_type: str
    control_id: str
    status: str
    attempts: int
    replays: int
    ack_code: str | None
    last_error: str | None
    updated_at: str | None
    sent_at: str | None


class OutboundPage(BaseModel):
    """Outbound messages newest first, and ``before`` for the next page (or null)."""

    outbound: list[OutboundOut]
    next_before: int | None
    destinations: dict[str, Any]


class OutboundBodyOut(BaseModel):
    """The message as sent and the ACK that settled it (operator only)."""

    id: int
    message: str
    ack: str | None


class OutboundReplayedOut(BaseModel):
    """The new row id of a replayed outbound message (the back of its queue)."""

    replayed: list[int]


def outbound_json(row: OutboundRow) -> dict[str, Any]:
    """The metadata of a row, times as ISO 8601."""
    return {"id": row.id, "queued_at": iso(row.queued_at), "destination": row.destination,
            "event_id": row.event_id, "causation_id": row.causation_id,
            "message_type": row.message_type, "control_id": row.control_id,
            "status": row.status, "attempts": row.attempts, "replays": row.replays,
            "ack_code": row.ack_code, "last_error": row.last_error,
            "updated_at": iso(row.updated_at), "sent_at": iso(row.sent_at)}


def _service(console: Console) -> OutboundService:
    service = getattr(console.runtime, "outbound", None)
    if service is None:
        raise Denied(404, NOT_CONFIGURED)
    return service  # type: ignore[no-any-return]


async def _row(console: Console, row_id: int) -> OutboundRow:
    row = await console.runtime.spool.get_outbound(row_id)
    if row is None:
        raise Denied(404, f"no outbound message with id {row_id}")
    return row


async def _replay(console: Console, request: Request, caller: Any, row_id: int) -> list[int]:
    service = _service(console)
    row = await _row(console, row_id)
    if row.status == "queued":
        raise Denied(409, f"outbound message {row_id} is queued already; nothing to replay")
    try:
        new_ids = await service.replay([row_id])
    except ReplayError as exc:
        await console.record(request, caller, "outbound_replay", targets=[row_id],
                             outcome=f"refused: {exc}")
        raise Denied(409, str(exc)) from None
    await console.record(request, caller, "outbound_replay", targets=[row_id],
                         outcome=f"queued as {new_ids}")
    return new_ids


async def _body(console: Console, request: Request, caller: Any, row_id: int
                ) -> dict[str, Any]:
    row = await _row(console, row_id)
    await console.record(request, caller, "outbound_body", targets=[row_id])
    return {"id": row.id, "message": row.message.decode("utf-8", "replace"),
            "ack": row.ack.decode("utf-8", "replace") if row.ack is not None else None}


def build_outbound_api(console: Console) -> APIRouter:
    """The ``/api/v1/outbound`` routes."""
    api = APIRouter(prefix="/api/v1/outbound")

    @api.get("", response_model=OutboundPage)
    async def listing(_: Viewer, destination: str | None = None,
                      status: Annotated[str | None, Query(pattern="^(queued|sent|failed)$")] = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100,
                      before: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None
                      ) -> dict[str, Any]:
        """Outbound messages newest first: destination, status, limit, before."""
        service = _service(console)
        rows = await console.runtime.spool.find_outbound(
            destination=destination, status=status, limit=limit, before_id=before)
        return {"outbound": [outbound_json(r) for r in rows],
                "next_before": rows[-1].id if len(rows) == limit and rows else None,
                "destinations": (await service.status())["destinations"]}

    @api.get("/{row_id}/body", response_model=OutboundBodyOut)
    async def body(request: Request, row_id: RowIdPath, caller: Operator) -> dict[str, Any]:
        """The message as sent and its ACK (operator; audited)."""
        _service(console)
        return await _body(console, request, caller, row_id)

    @api.post("/{row_id}/replay", status_code=202, response_model=OutboundReplayedOut)
    async def replay(request: Request, row_id: RowIdPath, caller: Operator) -> dict[str, Any]:
        """Send a failed or sent message again, rendered with the current profile, at the
        back of its destination's queue (operator; audited)."""
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        return {"replayed": await _replay(console, request, caller, row_id)}

    return api


def build_outbound_pages(console: Console) -> APIRouter:
    """The ``/console/outbound`` pages."""
    pages = APIRouter(prefix="/console/outbound")
    env = make_environment()

    def render(name: str, request: Request, caller: Caller, **context: Any) -> HTMLResponse:
        context.update(user=caller.user,
                       csrf=caller.session.csrf if caller.session else "",
                       path=request.url.path)
        return HTMLResponse(env.get_template(name).render(**context))

    @pages.get("")
    async def listing(request: Request, caller: Viewer, destination: str = "",
                      status: str = "") -> HTMLResponse:
        service = _service(console)
        rows = await console.runtime.spool.find_outbound(
            destination=destination or None,
            status=status if status in STATUSES else None, limit=200)
        return render("outbound.html", request, caller, rows=rows,
                      destinations=(await service.status())["destinations"],
                      values={"destination": destination, "status": status},
                      statuses=STATUSES)

    @pages.get("/{row_id}")
    async def one(request: Request, row_id: RowIdPath, caller: Viewer,
                  show: str = "") -> HTMLResponse:
        _service(console)
        row = await _row(console, row_id)
        body = None
        if show == "body":
            if not caller.user.may("operator"):
                raise Denied(403, "viewers may not see message bodies; it needs the "
                                  "operator role")
            body = await _body(console, request, caller, row_id)
        notice = {"replayed": "Queued again, at the back of the destination's queue."
                  }.get(request.query_params.get("notice", ""))
        return render("outbound_one.html", request, caller, row=row, body=body,
                      notice=notice)

    @pages.post("/{row_id}/replay")
    async def replay(request: Request, row_id: RowIdPath, caller: Operator
                     ) -> RedirectResponse:
        data = await request.form()
        csrf = data.get("csrf")
        console.check_write(request, caller, csrf if isinstance(csrf, str) else None)
        [new_id] = await _replay(console, request, caller, row_id)
        return RedirectResponse(f"/console/outbound/{new_id}?notice=replayed",
                                status_code=303)

    return pages
