"""Message filters from what callers send: query strings, JSON bodies, validation errors.

The console's pages and the JSON API read their listings' filters through ``parse_query``
and replay bodies through ``ReplayRequest``; a value that cannot be used (a row id beyond
SQLite's 64-bit range, ``true`` where a time belongs, text with a lone surrogate) is
refused here as ``Denied(400, reason)``, never passed on to fail inside the spool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gateway.console.core import Denied
from gateway.console.schemas import MAX_ROW_ID, STATUSES, ReplayRequest, seconds_from
from gateway.spool import MessageFilter
from gateway.spool.search import SEARCH_KINDS, SearchQuery
from gateway.spool.search_terms import NAME_PREFIX_MIN, name_tokens

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
QUERY_FIELDS = ("sender", "type", "status", "control_id", "since", "until")


@dataclass(frozen=True)
class Query:
    """A parsed message filter plus paging, and the raw values to echo into forms."""

    filter: MessageFilter
    limit: int
    before: int | None
    values: dict[str, str]


def parse_time(value: str) -> float:
    """Unix seconds, or ISO 8601 (``2024-01-15T10:30``; no offset means UTC); Denied(400)."""
    try:
        return seconds_from(value)
    except ValueError as exc:
        raise Denied(400, str(exc)) from None


def _text(value: str, name: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Denied(400, f"{name} must be valid Unicode text") from None
    return value


def _whole(params: Mapping[str, str], name: str, most: int) -> int | None:
    """A whole-number parameter from 1 to ``most`` (None when absent); Denied(400)."""
    text = (params.get(name) or "").strip()
    if not text:
        return None
    # ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and other scripts
    digits = text.lstrip("0")
    if not (text.isascii() and text.isdigit()) or len(digits) > 19 \
            or not 1 <= int(digits or "0") <= most:
        raise Denied(400, f"{name} must be a whole number from 1 to {most}")
    return int(digits)


def parse_query(params: Mapping[str, str]) -> Query:
    """A filter from query parameters: sender, type, status, control_id, since, until,
    and paging (``limit`` 1-500, default 50; ``before`` a row id)."""
    values = {k: _text(params.get(k, "").strip(), k) for k in QUERY_FIELDS}
    status = values["status"] or None
    if status is not None and status not in STATUSES:
        raise Denied(400, f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    limit = _whole(params, "limit", MAX_PAGE_SIZE)
    before = _whole(params, "before", MAX_ROW_ID)
    flt = MessageFilter(sender=values["sender"] or None, message_type=values["type"] or None,
                        status=status, control_id=values["control_id"] or None,
                        since=parse_time(values["since"]) if values["since"] else None,
                        until=parse_time(values["until"]) if values["until"] else None)
    return Query(flt, PAGE_SIZE if limit is None else limit, before, values)


SEARCH_LABELS = {"identifier": "patient identifier", "name": "patient name",
                 "control": "control id", "order": "order / accession number",
                 "text": "free text"}
MAX_SEARCH_CHARS = 200


def parse_search(params: Mapping[str, str], where: MessageFilter) -> SearchQuery | None:
    """The search in a query string (``q`` and ``kind``) within ``where``; None without
    ``q``. A query that cannot be used is refused with the reason (Denied(400))."""
    text = _text(params.get("q", "").strip(), "q")
    kind = params.get("kind", "").strip() or "identifier"
    if not text:
        return None
    if kind not in SEARCH_KINDS:
        raise Denied(400, f"unknown search kind {kind!r}; use one of "
                          f"{', '.join(SEARCH_KINDS)}")
    if len(text) > MAX_SEARCH_CHARS:
        raise Denied(400, f"q is {len(text)} characters; search with at most "
                          f"{MAX_SEARCH_CHARS}")
    if kind == "name" and not any(len(w) >= NAME_PREFIX_MIN for w in name_tokens(text)):
        raise Denied(400, "a name search needs a word of two letters or more")
    if kind == "text" and len(text) < 3:
        raise Denied(400, "a free text search needs three characters or more")
    return SearchQuery(kind, text, where)


def audit_filter(params: Mapping[str, str]) -> dict[str, str]:
    """A listing or search query string as an audit line may hold it: the filter fields
    that are set and the search's kind, never the searched value (it is patient data)."""
    out = {k: str(params[k]).strip() for k in QUERY_FIELDS if str(params.get(k, "")).strip()}
    if str(params.get("q", "")).strip():
        out["search"] = str(params.get("kind", "") or "identifier").strip()
    return out


def filter_from_json(body: Any) -> MessageFilter:
    """A replay filter from a parsed JSON body; an empty one needs ``"all": true``."""
    try:
        return ReplayRequest.model_validate(body).to_filter()
    except ValidationError as exc:
        raise Denied(400, describe_errors(exc.errors(), hint=REPLAY_HINT)) from None


REPLAY_HINT = ("send a JSON object with any of: ids, sender, message_type, status, "
               "control_id, since, until (or all: true)")


def describe_errors(errors: Sequence[Any], hint: str = "") -> str:
    """Pydantic/FastAPI validation errors as one readable line: ``where: what``; ``hint``
    replaces the message when the whole body has the wrong shape."""
    parts: list[str] = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        where = loc[0] if loc else ""
        name = ".".join(loc[1:]) if where in ("body", "query", "path", "header") else \
            ".".join(loc)
        kind = error.get("type", "")
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            parts.append(f"unknown field {name}")
        elif not name and kind in ("model_type", "model_attributes_type", "dict_type",
                                   "missing"):
            parts.append(hint or "send a JSON object")
        elif kind == "json_invalid":
            parts.append("the request body must be JSON")
        elif name:
            parts.append(f"{name} ({where}): {message}" if where in ("query", "path")
                         else f"{name}: {message}")
        else:
            parts.append(message)
    return "; ".join(dict.fromkeys(parts)) or "invalid request"

