"""The dead-letter page (events the bridge gave up on, redrive) and the alert rules' page.

Viewers list dead letters (error headers, CloudEvent type/id, patient key); operators see
an event's body (audited) and **redrive** chosen events to the bridge's topic (audited,
after a confirmation that shows how many). Which events were redriven is remembered from
the audit log itself: each ``dlq_redrive`` line names the DLQ topic and the
``partition:offset`` of every event sent back, and the page marks those, so the marks
survive a restart without a table of their own (as long as the line is among the audit
log's last few thousand entries, which ``AuditLog.latest`` reads).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.alerts.dead_letters import (
    DeadLetter,
    DeadLetterError,
    DeadLetterTopic,
    Position,
    format_positions,
    parse_positions,
)
from gateway.console.core import Caller, Console, Denied, iso
from gateway.console.deps import Operator, Viewer
from gateway.console.pages import make_environment

MAX_REDRIVE = 500
NO_DLQ = ("no dead-letter topic: add a bridge: section (with dlq_topic, default "
          "\"<topic>.dlq\") to the gateway's config so the console knows where the bridge "
          "puts events it gives up on (docs/alerts.md)")
NO_ALERTS = "no alert rules: add an alerts: section to the gateway's config (docs/alerts.md)"
PartitionPath = Annotated[int, Path(ge=0, le=1_000_000)]
OffsetPath = Annotated[int, Path(ge=0, le=2**63 - 1)]


class EventRef(BaseModel):
    """One dead letter, by where it is on the DLQ topic."""

    model_config = ConfigDict(extra="forbid", strict=True)
    partition: int = Field(ge=0, le=1_000_000)
    offset: int = Field(ge=0, le=2**63 - 1)


class RedriveIn(BaseModel):
    """Events to send back; without ``confirm: true`` only the count is answered."""

    model_config = ConfigDict(extra="forbid", strict=True)
    events: list[EventRef] = Field(min_length=1, max_length=MAX_REDRIVE)
    confirm: bool = False


class RedriveOut(BaseModel):
    """How many events were (or, for a preview, would be) sent back, and where they went."""

    count: int
    confirmed: bool
    topic: str
    redriven: list[str]  # "partition:offset" on the bridge's topic


class DeadLetterOut(BaseModel):
    """A dead letter's metadata (no body)."""

    partition: int
    offset: int
    timestamp: float
    time: str | None
    errors: dict[str, str]
    ce_type: str | None
    ce_id: str | None
    message_type: str | None
    patient_key: str | None
    redriven: bool


class DeadLettersPage(BaseModel):
    """Dead letters newest first; ``next_before`` is the cursor for older ones (or null)."""

    topic: str
    main_topic: str
    dead_letters: list[DeadLetterOut]
    next_before: str | None


class DeadLetterBodyOut(BaseModel):
    """An event as the bridge last tried to deliver it (operator only)."""

    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: str


class AlertsOut(BaseModel):
    """Every rule with its state, last value and webhook delivery."""

    rules: list[dict[str, Any]]
    webhook: str | None


class DeadLetterDesk:
    """The DLQ topic of this gateway's bridge, and the redrives recorded in the audit log."""

    def __init__(self, console: Console) -> None:
        self.console = console
        bridge = console.runtime.settings.bridge
        self.topic = (DeadLetterTopic(console.runtime.settings.kafka, bridge.dlq_topic,
                                      bridge.topic)
                      if bridge is not None and bridge.dlq_topic else None)
        self._redriven: set[Position] | None = None

    def need(self) -> DeadLetterTopic:
        if self.topic is None:
            raise Denied(404, NO_DLQ)
        return self.topic

    async def redriven(self) -> set[Position]:
        """Positions sent back before, read from the audit log once (in a thread: it may be
        half a megabyte), then kept up to date by ``redrive``."""
        if self._redriven is None:
            self._redriven = await asyncio.to_thread(self._read_marks, self.need().topic)
        return self._redriven

    def _read_marks(self, topic: str) -> set[Position]:
        marks: set[Position] = set()
        for entry in self.console.audit.latest(5000):
            flt = entry.get("filter") or {}
            if entry.get("action") == "dlq_redrive" and flt.get("topic") == topic:
                try:
                    marks.update(parse_positions(",".join(flt.get("events", []))).items())
                except (TypeError, ValueError):
                    continue  # a line edited by hand: no marks from it
        return marks

    def as_json(self, letter: DeadLetter, marks: set[Position]) -> dict[str, Any]:
        meta = letter.meta()
        meta["time"] = iso(letter.timestamp)
        meta["redriven"] = (letter.partition, letter.offset) in marks
        return meta

    async def page(self, limit: int, before: str) -> dict[str, Any]:
        topic = self.need()
        try:
            cursor = parse_positions(before)
        except ValueError as exc:
            raise Denied(400, f"before: use partition:offset pairs like 0:12,1:7 ({exc})"
                         ) from None
        try:
            letters, nxt = await topic.page(limit, cursor)
        except DeadLetterError as exc:
            raise Denied(503, str(exc)) from None
        marks = await self.redriven()
        return {"topic": topic.topic, "main_topic": topic.main_topic,
                "dead_letters": [self.as_json(x, marks) for x in letters],
                "next_before": format_positions(nxt) if nxt is not None else None}

    async def body(self, request: Request, caller: Caller, partition: int, offset: int
                   ) -> dict[str, Any]:
        topic = self.need()
        try:
            [letter] = await topic.fetch([(partition, offset)])
        except DeadLetterError as exc:
            raise Denied(404, str(exc)) from None
        await self.console.record(request, caller, "view_dead_letter", filter={
            "topic": topic.topic, "events": [f"{partition}:{offset}"]})
        return {"partition": partition, "offset": offset,
                "key": letter.key.decode("utf-8", "replace") if letter.key else None,
                "headers": {n: v.decode("utf-8", "replace") for n, v in letter.headers},
                "value": letter.value.decode("utf-8", "replace")}

    async def redrive(self, request: Request, caller: Caller, positions: list[Position],
                      confirm: bool) -> dict[str, Any]:
        topic = self.need()
        positions = list(dict.fromkeys(positions))  # each event once
        if len(positions) > MAX_REDRIVE:
            raise Denied(400, f"at most {MAX_REDRIVE} events per redrive; choose fewer")
        if not confirm:
            return {"count": len(positions), "confirmed": False, "topic": topic.main_topic,
                    "redriven": []}
        await self.console.audit.writable()  # refused now rather than done unrecorded
        try:
            letters = await topic.fetch(positions)
            placed = await topic.redrive(letters)
        except DeadLetterError as exc:
            raise Denied(409, str(exc)) from None
        events = [f"{p}:{o}" for p, o in positions]
        await self.console.record(request, caller, "dlq_redrive", filter={
            "topic": topic.topic, "to": topic.main_topic, "events": events,
            "placed": [f"{p}:{o}" for p, o in placed]}, outcome=f"{len(placed)} redriven")
        (await self.redriven()).update(positions)
        return {"count": len(placed), "confirmed": True, "topic": topic.main_topic,
                "redriven": [f"{p}:{o}" for p, o in placed]}


def _engine(console: Console) -> Any:
    return getattr(console.runtime, "alerts", None)


def build_router(console: Console) -> APIRouter:
    """This feature's pages (under /console) and API routes (under /api/v1)."""
    router = APIRouter()
    desk = DeadLetterDesk(console)
    env = make_environment()

    def render(name: str, request: Request, caller: Caller, **context: Any) -> HTMLResponse:
        context.update(user=caller.user, csrf=caller.session.csrf if caller.session else "",
                       path=request.url.path)
        return HTMLResponse(env.get_template(name).render(**context))

    # -- API ------------------------------------------------------------------------------

    @router.get("/api/v1/dead-letters", response_model=DeadLettersPage)
    async def api_list(_: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                       before: Annotated[str, Query(max_length=4000)] = "") -> dict[str, Any]:
        """Dead letters newest first (viewer: metadata only); page with ``next_before``."""
        return await desk.page(limit, before)

    @router.get("/api/v1/dead-letters/{partition}/{offset}/body",
                response_model=DeadLetterBodyOut)
    async def api_body(request: Request, partition: PartitionPath, offset: OffsetPath,
                       caller: Operator) -> dict[str, Any]:
        """The event's key, headers and value (operator; audited)."""
        return await desk.body(request, caller, partition, offset)

    @router.post("/api/v1/dead-letters/redrive", response_model=RedriveOut)
    async def api_redrive(request: Request, data: RedriveIn, caller: Operator
                          ) -> dict[str, Any]:
        """Send events back to the bridge's topic without their dlq_* headers (operator;
        audited). Without ``"confirm": true`` only the count is answered."""
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        return await desk.redrive(request, caller,
                                  [(e.partition, e.offset) for e in data.events], data.confirm)

    @router.get("/api/v1/alerts", response_model=AlertsOut)
    async def api_alerts(_: Viewer) -> dict[str, Any]:
        """Alert rules with state, last value, last sent and webhook delivery."""
        engine = _engine(console)
        if engine is None:
            raise Denied(404, NO_ALERTS)
        hook = engine.settings.webhook
        return {"rules": engine.status(), "webhook": _host(hook.url) if hook else None}

    # -- pages ----------------------------------------------------------------------------

    @router.get("/console/dead-letters")
    async def page(request: Request, caller: Viewer, before: str = "") -> HTMLResponse:
        if desk.topic is None:
            return render("dead_letters.html", request, caller, missing=NO_DLQ, data=None,
                          error=None, notice=None)
        error = None
        data = None
        try:
            data = await desk.page(100, before)
        except Denied as exc:
            if exc.status == 400:
                raise
            error = exc.message
        notice = None
        if request.query_params.get("notice") == "redriven":
            notice = (f"Sent {request.query_params.get('n', '?')} event(s) back to "
                      f"{desk.topic.main_topic}.")
        return render("dead_letters.html", request, caller, missing=None, data=data,
                      error=error, notice=notice, before=before)

    @router.post("/console/dead-letters/redrive", response_model=None)
    async def page_redrive(request: Request, caller: Operator
                           ) -> HTMLResponse | RedirectResponse:
        form = await request.form()
        csrf = form.get("csrf")
        console.check_write(request, caller, csrf if isinstance(csrf, str) else None)
        chosen = [v for v in form.getlist("event") if isinstance(v, str)]
        try:
            positions = [pos for text in chosen for pos in parse_positions(text).items()]
        except ValueError as exc:
            raise Denied(400, f"event: {exc}") from None
        if not positions:
            raise Denied(400, "choose at least one event (tick its box) to redrive")
        result = await desk.redrive(request, caller, positions, form.get("confirm") == "yes")
        if not result["confirmed"]:
            return render("dead_letters.html", request, caller, missing=None, data=None,
                          error=None, notice=None, confirm=result,
                          events=[f"{p}:{o}" for p, o in positions])
        return RedirectResponse(f"/console/dead-letters?notice=redriven&n={result['count']}",
                                status_code=303)

    @router.get("/console/dead-letters/{partition}/{offset}")
    async def page_body(request: Request, partition: PartitionPath, offset: OffsetPath,
                        caller: Operator) -> HTMLResponse:
        body = await desk.body(request, caller, partition, offset)
        return render("dead_letters.html", request, caller, missing=None, data=None,
                      error=None, notice=None, body=body)

    @router.get("/console/alerts")
    async def alerts_page(request: Request, caller: Viewer) -> HTMLResponse:
        engine = _engine(console)
        return render("alerts.html", request, caller,
                      rules=engine.status() if engine else None, missing=NO_ALERTS,
                      webhook=_host(engine.settings.webhook.url)
                      if engine and engine.settings.webhook else None,
                      interval_s=engine.settings.interval_s if engine else None)

    return router


def _host(url: str) -> str:
    """The webhook's scheme, host and path only (a token may hide in its query)."""
    from connectors.bridge.dlq import redact_url

    return redact_url(url)
