"""Trying a changed profile on recent messages before it goes live, then applying or discarding it.

``/console/try`` takes a profile pasted, uploaded, or picked from the profiles folder's
drafts (``*.draft`` files, e.g. ``sunlab.yaml.draft``: the gateway loads only ``*.yaml``,
so a draft sits beside the live files without being used). The trial runs in the
background (``gateway.trial``); its page refreshes itself until the report is there.
**Apply** writes the profile into the folder atomically and reloads the live set at once;
**Discard** drops it (nothing was written).

Every route needs the operator role: the report shows before/after values of messages.
Starting a trial, its result (counts only), applying and discarding are audited, with the
profile's name and file, never message content.

API: ``POST /api/v1/profiles/try`` (JSON: ``yaml`` or ``draft``, ``since``, ``last``,
``sender``), ``GET /api/v1/profiles/try/{job}``, ``POST .../{job}/apply``,
``POST .../{job}/discard``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.datastructures import FormData, UploadFile

from gateway.console.core import Caller, Console, Denied, peer_of
from gateway.console.deps import Operator
from gateway.console.pages import make_environment
from gateway.errors import SpoolError
from gateway.profiles import ProfileStore
from gateway.trial import (
    DEFAULT_EXAMPLES,
    DEFAULT_LAST,
    DRAFT_SUFFIX,
    MAX_LAST,
    ReadOnlySpool,
    TrialError,
    Window,
    check_file_name,
    drafts,
    make_candidate,
    parse_since,
)
from gateway.trial.jobs import TrialJob
from mappers.errors import ProfileError

log = logging.getLogger("hl7gw.console")
JobPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,32}$", description="a trial job id")]
PASTED = "pasted.yaml"


class TrialIn(BaseModel):
    """A trial to start: the profile as ``yaml``, or a ``draft`` file of the profiles folder."""

    yaml: str | None = Field(default=None, max_length=256 * 1024)
    draft: str | None = Field(default=None, max_length=128)
    since: str | None = Field(default=None, max_length=40, description="24h, 30m, 7d or ISO")
    last: int = Field(default=DEFAULT_LAST, ge=1, le=MAX_LAST)
    sender: str | None = Field(default=None, max_length=200, description="APP^FAC or APP")
    examples: int = Field(default=DEFAULT_EXAMPLES, ge=0, le=100)


def _store(console: Console) -> ProfileStore | None:
    store = getattr(console.runtime, "profiles", None)
    return store if isinstance(store, ProfileStore) else None


def _folder(console: Console) -> FilePath | None:
    store = _store(console)
    return store.settings.dir if store is not None else None


def read_draft(console: Console, name: str) -> str:
    """The text of a ``*.draft`` file in the profiles folder; Denied(400/404) otherwise."""
    folder = _folder(console)
    if folder is None:
        raise Denied(404, "this gateway has no profiles.dir, so there are no drafts")
    try:
        check_file_name(name)
    except TrialError as exc:
        raise Denied(400, str(exc)) from None
    if not name.endswith(DRAFT_SUFFIX) or name not in drafts(folder):
        raise Denied(404, f"no draft {name!r} in the profiles folder (drafts end in "
                          f"{DRAFT_SUFFIX}, e.g. sunlab.yaml{DRAFT_SUFFIX})")
    try:
        return (folder / name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Denied(400, f"cannot read the draft {name}: {exc}") from None


def build_router(console: Console) -> APIRouter:
    """This feature's pages (under /console) and API routes (under /api/v1)."""
    router = APIRouter()
    jobs = console.trials
    env = make_environment()

    async def start(request: Request, caller: Caller, text: str, label: str,
                    since: str | None, last: int, sender: str | None,
                    examples: int = DEFAULT_EXAMPLES) -> TrialJob:
        """Check the profile, audit, and start the trial (Denied(400) for a bad one)."""
        live, generation, _ = console.profile_state()
        folder = _folder(console)
        try:
            window = Window(since=parse_since(since) if since else None, last=last,
                            sender=sender or None)
            candidate = await asyncio.to_thread(
                make_candidate, text, live, label=label,
                origin=str(folder) if folder is not None else "<profiles>",
                generation=generation)
            job = jobs.create(candidate, window, user=caller.user.name, label=label)
        except (ProfileError, TrialError) as exc:
            raise Denied(400, str(exc)) from None
        spool = console.runtime.spool
        try:  # a connection of its own, read-only: the trial cannot write, nor slow ACKs
            source = ReadOnlySpool(spool.path, spool.sealer.keyring)
        except SpoolError as exc:
            jobs.discard(job)
            raise Denied(503, str(exc)) from None
        try:
            await console.record(request, caller, "profile_try", filter={
                "profile": candidate.name, "file": candidate.target, "source": label,
                "senders": window.describe(candidate), "since": since, "last": last},
                outcome=f"started trial {job.id}")
        except BaseException:
            jobs.discard(job)
            source.close()
            raise
        user, role, peer = caller.user.name, caller.user.role, peer_of(request)

        async def finished(done: TrialJob) -> None:
            outcome = done.report.counts() if done.report else f"failed: {done.error}"
            try:
                await console.audit.record(user=user, role=role, action="profile_try_result",
                                           peer=peer, filter={"profile": candidate.name,
                                                              "job": done.id},
                                           outcome=outcome)
            except Exception as exc:  # noqa: BLE001 - the trial changed nothing
                log.warning("could not audit a trial's result", extra={"error": str(exc)})

        jobs.launch(job, source, finished, close=source.close)
        return job

    def job_of(job_id: str) -> TrialJob:
        job = jobs.get(job_id)
        if job is None:
            raise Denied(404, f"no trial {job_id} (trials are kept in memory: a restart, "
                              "or 20 newer trials, drop it); start it again")
        return job

    async def apply(request: Request, caller: Caller, job: TrialJob) -> int:
        store = _store(console)
        if store is None:
            raise Denied(409, "this gateway has no profiles store to apply to")
        try:
            generation = await asyncio.to_thread(jobs.apply, job, store)
        except TrialError as exc:
            await console.record(request, caller, "profile_apply", filter={
                "profile": job.candidate.name, "file": job.candidate.target, "job": job.id},
                outcome=f"refused: {exc}")
            raise Denied(409, str(exc)) from None
        counts = job.report.counts() if job.report else ""
        await console.record(request, caller, "profile_apply", filter={
            "profile": job.candidate.name, "file": job.candidate.target, "job": job.id},
            outcome=f"live as generation {generation}; {counts}")
        return generation

    async def discard(request: Request, caller: Caller, job: TrialJob) -> None:
        if job.state == "applied":
            raise Denied(409, f"trial {job.id} was applied already; to undo it, try and "
                              "apply the previous profile")
        jobs.discard(job)
        await console.record(request, caller, "profile_discard", filter={
            "profile": job.candidate.name, "job": job.id})

    # -- API ------------------------------------------------------------------------------

    @router.post("/api/v1/profiles/try", status_code=202)
    async def api_start(request: Request, body: TrialIn, caller: Operator) -> dict[str, Any]:
        """Start a trial of ``yaml`` (or of a ``draft`` file) on recent messages."""
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        if (body.yaml is None) == (body.draft is None):
            raise Denied(400, "send the profile as yaml (its text) or draft (a *.draft file "
                              "of the profiles folder), one of the two")
        text, label = ((body.yaml, PASTED) if body.yaml is not None
                       else (read_draft(console, body.draft or ""), body.draft or ""))
        job = await start(request, caller, text, label, body.since, body.last, body.sender,
                          body.examples)
        return job.as_json()

    @router.get("/api/v1/profiles/try/{job_id}")
    async def api_job(job_id: JobPath, caller: Operator) -> dict[str, Any]:
        """The trial's state, progress and (when done) its report."""
        return job_of(job_id).as_json()

    @router.post("/api/v1/profiles/try/{job_id}/apply")
    async def api_apply(request: Request, job_id: JobPath, caller: Operator
                        ) -> dict[str, Any]:
        """Write the tried profile into the profiles folder and reload (audited)."""
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        job = job_of(job_id)
        generation = await apply(request, caller, job)
        return {"applied": job.candidate.target, "profile": job.candidate.name,
                "generation": generation}

    @router.post("/api/v1/profiles/try/{job_id}/discard")
    async def api_discard(request: Request, job_id: JobPath, caller: Operator
                          ) -> dict[str, Any]:
        """Drop the tried profile (stops the trial if it runs; audited)."""
        console.check_write(request, caller, request.headers.get("x-csrf-token"))
        job = job_of(job_id)
        await discard(request, caller, job)
        return {"discarded": job.id}

    # -- pages ----------------------------------------------------------------------------

    def render(name: str, request: Request, caller: Caller, status: int = 200,
               **context: Any) -> HTMLResponse:
        context.update(user=caller.user, csrf=caller.session.csrf if caller.session else "",
                       path=request.url.path)
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def form_page(request: Request, caller: Caller, status: int = 200,
                  **values: Any) -> HTMLResponse:
        folder = _folder(console)
        return render("try.html", request, caller, status, drafts=drafts(folder),
                      folder=str(folder) if folder else None, jobs=jobs.recent(),
                      values={"yaml": "", "draft": "", "since": "", "last": DEFAULT_LAST,
                              "sender": "", **values},
                      problem=values.get("problem"))

    @router.get("/console/try")
    async def page(request: Request, caller: Operator) -> HTMLResponse:
        return form_page(request, caller)

    @router.post("/console/try")
    async def page_start(request: Request, caller: Operator) -> Any:
        async with request.form(max_part_size=256 * 1024) as form:  # closes the upload
            return await start_from_form(request, caller, form)

    async def start_from_form(request: Request, caller: Caller, form: FormData) -> Any:
        csrf = form.get("csrf")
        console.check_write(request, caller, csrf if isinstance(csrf, str) else None)

        def field(name: str) -> str:
            value = form.get(name)
            return value.strip() if isinstance(value, str) else ""

        values = {k: field(k) for k in ("draft", "since", "last", "sender")}
        pasted = form.get("yaml")
        text = pasted if isinstance(pasted, str) else ""
        upload = form.get("upload")
        try:
            last = int(values["last"] or DEFAULT_LAST)
            if isinstance(upload, UploadFile) and upload.filename:
                label = FilePath(upload.filename).name or "upload.yaml"
                text = (await upload.read()).decode("utf-8")
            elif values["draft"]:
                label, text = values["draft"], read_draft(console, values["draft"])
            elif text.strip():
                label = PASTED
            else:
                raise Denied(400, "paste a profile, upload a file, or pick a draft")
            job = await start(request, caller, text, label, values["since"] or None, last,
                              values["sender"] or None)
        except (Denied, ValueError) as exc:
            message = exc.message if isinstance(exc, Denied) else (
                f"cannot use that: {exc} (a profile is UTF-8 YAML; last is a number)")
            if isinstance(exc, Denied) and exc.status not in (400, 404):
                raise
            return form_page(request, caller, 400, problem=message, yaml=text,
                             **{k: v for k, v in values.items() if k != "yaml"})
        return RedirectResponse(f"/console/try/{job.id}", status_code=303)

    @router.get("/console/try/{job_id}")
    async def page_job(request: Request, job_id: JobPath, caller: Operator) -> HTMLResponse:
        job = job_of(job_id)
        notice = {"applied": f"Applied: {job.candidate.target} is live (generation "
                             f"{job.generation}); new messages are mapped with it.",
                  "discarded": "Discarded: nothing was written."
                  }.get(request.query_params.get("notice", ""))
        return render("try_job.html", request, caller, job=job, notice=notice,
                      report=job.report.as_json() if job.report else None)

    @router.post("/console/try/{job_id}/apply")
    async def page_apply(request: Request, job_id: JobPath, caller: Operator
                         ) -> RedirectResponse:
        form = await request.form()
        csrf = form.get("csrf")
        console.check_write(request, caller, csrf if isinstance(csrf, str) else None)
        await apply(request, caller, job_of(job_id))
        return RedirectResponse(f"/console/try/{job_id}?notice=applied", status_code=303)

    @router.post("/console/try/{job_id}/discard")
    async def page_discard(request: Request, job_id: JobPath, caller: Operator
                           ) -> RedirectResponse:
        form = await request.form()
        csrf = form.get("csrf")
        console.check_write(request, caller, csrf if isinstance(csrf, str) else None)
        await discard(request, caller, job_of(job_id))
        return RedirectResponse(f"/console/try/{job_id}?notice=discarded", status_code=303)

    return router
