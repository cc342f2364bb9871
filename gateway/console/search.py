"""Finding any message in the spool: by patient identifier, name, control id, order number or free
text, off the event loop.

The Messages page and ``GET /api/v1/messages/search`` take the listing's filter (sender,
type, status, since, until) plus ``q`` and ``kind``. A control id search is metadata a
viewer may run; identifier, name, order and text searches look into patient data, so they
need the operator role and write an audit line (``search``) naming the kind, never the
value. ``select_ids`` and ``count_matching`` give other features (bulk actions) the rows
a page's query string means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request

from gateway.console.core import Caller, Console, Denied, message_json
from gateway.console.deps import Viewer
from gateway.console.filters import (
    QUERY_FIELDS,
    SEARCH_LABELS,
    audit_filter,
    parse_query,
    parse_search,
)
from gateway.console.schemas import SearchPageOut
from gateway.spool.search import PHI_KINDS, SearchPage, SearchQuery


def _query(params: Mapping[str, str]) -> tuple[SearchQuery, bool]:
    """The search a query string means (a plain listing is a control id "search" with the
    filter's own control id); and whether it is a search at all."""
    where = parse_query(params).filter
    found = parse_search(params, where)
    if found is not None:
        return found, True
    return SearchQuery("control", where.control_id or "", where), False


async def select_ids(console: Console, params: Mapping[str, str], cap: int
                     ) -> tuple[list[int], bool]:
    """Ids (newest first) of the messages a listing or search query string matches, at
    most ``cap``; and whether more matched. Paging parameters are ignored: this is every
    matching row. Raises Denied(400) for a query that cannot be used. Does not audit:
    the caller records its action with :func:`audit_filter` of the same ``params``."""
    query, _ = _query(params)
    return await console.runtime.spool.search.ids(query, cap)


async def count_matching(console: Console, params: Mapping[str, str]) -> int:
    """How many messages a listing or search query string matches (a text search counts
    the hits within the rows one scan reads). Raises Denied(400) like ``select_ids``."""
    query, _ = _query(params)
    return await console.runtime.spool.search.count(query)


@dataclass(frozen=True)
class Found:
    """One page of a listing or search, for the page and the API."""

    page: SearchPage
    query: SearchQuery
    searching: bool
    limit: int
    behind: int


async def run_search(console: Console, request: Request, caller: Caller,
                     params: Mapping[str, str]) -> Found:
    """A listing or search page; a PHI search checks the role and is audited first."""
    q = parse_query(params)
    query, searching = _query(params)
    search = console.runtime.spool.search
    if searching and query.kind in PHI_KINDS:
        if not caller.user.may("operator"):
            raise Denied(403, f"searching by {query.kind} looks into patient data; it needs "
                              "the operator role (a viewer may search by control id)")
        await console.record(request, caller, "search", filter=audit_filter(params))
    if searching:
        page = await search.find(query, limit=q.limit, before_id=q.before)
        behind = await search.behind() if query.kind != "text" else 0
    else:
        rows = await console.runtime.spool.find(q.filter, limit=q.limit, before_id=q.before)
        page = SearchPage(list(rows), next_before=rows[-1].id if len(rows) == q.limit
                          else None)
        behind = 0
    return Found(page, query, searching, q.limit, behind)


def page_url(base: str, params: Mapping[str, str], before: int | None) -> str:
    """The same query string, at another page."""
    kept = {k: v for k, v in params.items() if v and k not in ("before",)}
    if before is not None:
        kept["before"] = str(before)
    return f"{base}?{urlencode(kept)}" if kept else base


async def search_context(console: Console, request: Request, caller: Caller
                         ) -> dict[str, Any]:
    """What messages.html shows: rows, the form's values, paging links, the bulk form's
    fields, and for a text search how far it read; a query that cannot be used is shown
    as ``problem`` (a role refusal is raised: the error page says what is needed)."""
    params = dict(request.query_params)
    values = {k: params.get(k, "") for k in (*QUERY_FIELDS, "q")}
    values["kind"] = params.get("kind", "") or "identifier"
    context: dict[str, Any] = {"values": values, "kinds": SEARCH_LABELS, "rows": [],
                               "older": None, "newest": None, "problem": None,
                               "found": None, "total": None, "filter": request.url.query,
                               "may_bulk": caller.user.may("operator")}
    try:
        found = await run_search(console, request, caller, params)
        # a text search would read the bodies a second time to count: not for a page view
        total = (await count_matching(console, params)
                 if context["may_bulk"] and found.query.kind != "text" else None)
    except Denied as exc:
        if exc.status != 400:
            raise
        context["problem"] = exc.message
        return context
    base = "/console/messages"
    context.update(rows=found.page.rows, found=found, total=total,
                   older=page_url(base, params, found.page.next_before)
                   if found.page.next_before is not None else None,
                   newest=page_url(base, params, None) if params.get("before") else None)
    return context


def build_router(console: Console) -> APIRouter:
    """This feature's pages (under /console) and API routes (under /api/v1)."""
    router = APIRouter()

    @router.get("/api/v1/messages/search", response_model=SearchPageOut)
    async def search_api(request: Request, caller: Viewer) -> dict[str, Any]:
        """Messages matching ``q`` of ``kind`` (identifier, name, control, order, text)
        within the listing filter, newest first. identifier, name, order and text need
        the operator role and are audited (the kind, not the value)."""
        params = dict(request.query_params)
        if not params.get("q", "").strip():
            raise Denied(400, "q is required: the value to search for (with kind: "
                              "identifier, name, control, order or text)")
        found = await run_search(console, request, caller, params)
        page = found.page
        return {"messages": [message_json(r) for r in page.rows],
                "next_before": page.next_before, "kind": found.query.kind,
                "scanned": page.scanned, "in_window": page.in_window,
                "index_behind": found.behind}

    return router


__all__ = ["build_router", "count_matching", "page_url", "run_search",
           "search_context", "select_ids"]
