"""Working on many messages at once: replay or reprocess a selection, export it as HL7 or
NDJSON; the raw view and the Bundle diff.

Every route here needs the operator role. Bulk actions go preview first, then confirm
(``bulk_select``): ``POST /console/messages/bulk`` shows what would be acted on,
``POST /console/messages/bulk/confirm`` acts; the API's ``POST /api/v1/messages/bulk``
previews unless ``"confirm": true``. Each confirmed action, each raw download and each
diff is one audit line (counts and id ranges, never message content). See docs/bulk.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from gateway.bundle_diff import element_of
from gateway.console import bulk_actions, export
from gateway.console.api import ERRORS, RowIdPath
from gateway.console.bulk_select import (
    MAX_BULK,
    Selection,
    Selections,
    infos,
    parse_action,
    parse_form_ids,
    preview_of,
    query_params,
    select_matching,
)
from gateway.console.core import Caller, Console, Denied
from gateway.console.deps import Operator
from gateway.console.diffview import diff_row
from gateway.console.filters import audit_filter
from gateway.console.pages import make_environment
from gateway.console.schemas import BulkPreviewOut, BulkRequest, DiffOut

# What each action does, as the preview page says it (docs/bulk.md says the same).
EXPLAIN = {
    "replay": "Replay: each published or failed message goes back to pending; the "
              "publisher maps it again with the profiles live then and publishes it under "
              "a new event id (<event id>-r<n>). A message the current profiles cannot map "
              "becomes failed. Pending messages are left as they are.",
    "reprocess": "Reprocess: each published or failed message is first mapped here with the "
                 "current profiles; only those that map are queued like a replay. The "
                 "others are left exactly as they are and listed with the reason. Pending "
                 "messages are left as they are.",
    "export-hl7": "Export HL7: one .hl7 file with the raw messages as received (UTF-8, no "
                  "MLLP framing; segments end in CR, messages in a newline). Nothing changes.",
    "export-ndjson": "Export NDJSON: one FHIR Bundle per line, as the current profiles map "
                     "each message now (a message that does not map is an "
                     "OperationOutcome line). Nothing changes.",
}


def build_router(console: Console) -> APIRouter:
    """This feature's pages (under /console) and API routes (under /api/v1)."""
    router = APIRouter()
    env = make_environment()
    env.filters["element"] = element_of
    env.filters["short"] = _short
    held = Selections()

    def render(name: str, request: Request, caller: Caller, status: int = 200,
               **context: Any) -> HTMLResponse:
        context.update(user=caller.user, path=request.url.path,
                       csrf=caller.session.csrf if caller.session else "")
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    async def export_response(request: Request, caller: Caller, selection: Selection
                              ) -> StreamingResponse:
        fmt: export.Format = "hl7" if selection.action == "export-hl7" else "ndjson"
        ids = selection.ids
        span = f", ids {min(ids)}-{max(ids)}" if ids else ""
        await console.record(request, caller, "export", filter=selection.audit_filter,
                             outcome=f"{len(ids)} messages as {fmt}{span}")
        name = export.filename(fmt, len(ids))
        return StreamingResponse(export.stream(console, ids, fmt), media_type=export.MEDIA[fmt],
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # -- pages ----------------------------------------------------------------------------

    @router.post("/console/messages/bulk")
    async def bulk_preview(request: Request, caller: Operator) -> HTMLResponse:
        form = await request.form()
        text = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        console.check_write(request, caller, text.get("csrf"))
        action = parse_action(text.get("action", ""))
        params = query_params(text.get("filter", ""))
        if text.get("all_matching") == "1":
            ids = await select_matching(console, params)
            chosen = {**audit_filter(params), "selection": "all matching"}
        else:
            ids = parse_form_ids([v for k, v in form.multi_items()
                                  if k == "id" and isinstance(v, str)])
            if not ids:
                raise Denied(400, "no messages selected: tick some, or choose "
                                  "\"all matching\", then try again")
            chosen = {"selection": "ticked"}
        rows = await infos(console, ids)
        preview = preview_of(rows)
        token = held.hold(Selection(action, tuple(r.id for r in rows), caller.user.name,
                                    chosen)) if rows else ""
        return render("bulk_preview.html", request, caller, preview=preview, action=action,
                      explain=EXPLAIN[action], token=token, cap=MAX_BULK,
                      back=f"/console/messages?{text.get('filter', '')}".rstrip("?"))

    @router.post("/console/messages/bulk/confirm", response_model=None)
    async def bulk_confirm(request: Request, caller: Operator) -> Response:
        form = await request.form()
        csrf, token = form.get("csrf"), form.get("token")
        console.check_write(request, caller, csrf if isinstance(csrf, str) else None)
        selection = held.take(token if isinstance(token, str) else "", caller.user.name)
        if selection.action.startswith("export-"):
            return await export_response(request, caller, selection)
        done = await bulk_actions.run(console, request, caller, selection)
        return render("bulk_done.html", request, caller, action=selection.action, done=done,
                      selected=len(selection.ids))

    @router.get("/console/messages/{row_id}/raw")
    async def raw(request: Request, row_id: RowIdPath, caller: Operator) -> Response:
        """The raw message as a text file (audited as a body view)."""
        info = await console.message(row_id)
        stored = await console.runtime.spool.body(row_id)
        if stored is None:
            raise Denied(404, f"no message with id {row_id}")
        await console.record(request, caller, "view_body", targets=[row_id],
                             outcome="raw download")
        text = stored.raw.decode(info.charset, "replace")
        return Response(text.encode(), media_type="text/plain; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="message-{row_id}.hl7"'})

    @router.get("/console/messages/{row_id}/diff")
    async def diff_page(request: Request, row_id: RowIdPath, caller: Operator
                        ) -> HTMLResponse:
        await console.message(row_id)
        await console.record(request, caller, "view_diff", targets=[row_id])
        result = await diff_row(console, row_id)
        left, right = result.lines()
        return render("diff.html", request, caller, result=result, left=left, right=right)

    # -- API ------------------------------------------------------------------------------

    @router.post("/api/v1/messages/bulk", response_model=None, responses={
        **ERRORS, 200: {"model": BulkPreviewOut,
                        "description": "the preview, or what was done; an export is the "
                                       "file itself"}})
    async def bulk_api(request: Request, body: BulkRequest, caller: Operator) -> Response:
        """Replay, reprocess or export many messages (operator; audited when confirmed).
        ``{"action", "ids": [...]}`` or ``{"action", "filter": {...}}``; without
        ``"confirm": true`` the answer is a preview and nothing changes."""
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        if body.ids is not None:
            ids: Sequence[int] = sorted(set(body.ids))
            chosen: dict[str, Any] = {"selection": "ids"}
        else:
            params = dict(body.filter or {})
            ids = await select_matching(console, params)
            chosen = {**audit_filter(params), "selection": "filter"}
        rows = await infos(console, ids)
        preview = preview_of(rows)
        out = {"action": body.action, "confirmed": body.confirm, "max": MAX_BULK,
               **preview.as_json()}
        if not body.confirm:
            return _json(out)
        selection = Selection(body.action, tuple(r.id for r in rows), caller.user.name, chosen)
        if body.action.startswith("export-"):
            return await export_response(request, caller, selection)
        done = await bulk_actions.run(console, request, caller, selection)
        out |= {"queued": done.queued, "skipped_pending": done.skipped_pending,
                "not_mapped": {str(k): v for k, v in done.not_mapped.items()}
                if body.action == "reprocess" else None}
        return _json(out)

    @router.get("/api/v1/messages/{row_id}/diff", response_model=DiffOut, responses=ERRORS)
    async def diff_api(request: Request, row_id: RowIdPath, caller: Operator
                       ) -> dict[str, Any]:
        """The Bundle as published (read back from Kafka) vs as the current profiles map
        it now, and every element that differs (operator; audited)."""
        await console.message(row_id)
        await console.record(request, caller, "view_diff", targets=[row_id])
        return (await diff_row(console, row_id)).as_json()

    return router


def _short(value: Any) -> str:
    """A changed value for the diff table: JSON, cut at 200 characters."""
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:199] + "…"


def _json(data: dict[str, Any]) -> Response:
    """The answer's declared shape, checked (the route itself may also stream a file)."""
    return JSONResponse(BulkPreviewOut.model_validate(data).model_dump())
