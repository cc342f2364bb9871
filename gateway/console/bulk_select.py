"""Which messages a bulk action means, what the preview shows, and the confirmation token.

A bulk action runs in two steps so that nothing changes on one click: the Messages page's
form (ticked ids, or "all matching" its filter) gives a *selection*, shown as a preview
(how many, which senders and types, a sample of control ids); only the confirm form,
carrying the selection's token, acts. The token is held here on the server with the ids
it stands for, bound to the user who asked, used once and forgotten after
``TOKEN_TTL_S``: a confirm acts on exactly what the preview showed, even if more messages
arrived since, and a token is worth nothing to anyone else.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from gateway.console.core import Console, Denied
from gateway.console.filters import parse_query
from gateway.spool import MessageFilter, MessageInfo

Action = Literal["replay", "reprocess", "export-hl7", "export-ndjson"]
ACTIONS: tuple[Action, ...] = ("replay", "reprocess", "export-hl7", "export-ndjson")
MAX_BULK = 10_000  # a hard cap per action, stated on the preview page
TOKEN_TTL_S = 15 * 60
MAX_TOKENS = 200  # pending previews kept; the oldest go first
SAMPLE = 10
INFO_CHUNK = 1000  # ids per spool query when reading a selection's metadata


@dataclass(frozen=True)
class Selection:
    """What a preview showed and a confirm acts on."""

    action: Action
    ids: tuple[int, ...]
    user: str
    audit_filter: dict[str, Any]  # how it was chosen, without patient data
    created: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Preview:
    """The numbers a preview page (and the API's unconfirmed answer) shows."""

    count: int
    statuses: dict[str, int]
    senders: list[tuple[str, int]]
    types: list[tuple[str, int]]
    sample: list[str]  # control ids of the first few (newest) messages
    first_id: int | None
    last_id: int | None

    def as_json(self) -> dict[str, Any]:
        """For the API."""
        return {"count": self.count, "statuses": self.statuses,
                "senders": dict(self.senders), "types": dict(self.types),
                "sample_control_ids": self.sample, "first_id": self.first_id,
                "last_id": self.last_id}


def parse_action(value: str) -> Action:
    """One of ``ACTIONS``; Denied(400) naming them otherwise."""
    for action in ACTIONS:
        if value == action:
            return action
    raise Denied(400, f"unknown action {value!r}; use one of {', '.join(ACTIONS)}")


def parse_form_ids(values: Sequence[str]) -> list[int]:
    """Ticked ``id`` checkboxes as row ids; Denied(400) for anything else."""
    out: list[int] = []
    for value in values:
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) < 2**63:
            raise Denied(400, f"id must be a whole number from 1 to {2**63 - 1}")
        out.append(int(text))
    if len(out) > MAX_BULK:
        raise Denied(400, f"at most {MAX_BULK:,} messages per bulk action")
    return sorted(set(out))


def query_params(query: str) -> dict[str, str]:
    """The list page's query string as parameters (paging dropped: "all matching")."""
    return {k: v for k, v in parse_qsl(query, keep_blank_values=False)
            if k not in ("before", "limit")}


async def select_matching(console: Console, params: Mapping[str, str]) -> list[int]:
    """Every row id the filter matches, newest first, up to ``MAX_BULK``; Denied(400) when
    more match (the preview would otherwise act on an arbitrary part)."""
    ids, more = await _select(console, params)
    if more:
        raise Denied(400, f"more than {MAX_BULK:,} messages match: narrow the filter "
                          "(a sender, a type, a time range) and try again")
    return ids


async def _select(console: Console, params: Mapping[str, str]) -> tuple[list[int], bool]:
    from gateway.console import search  # the search feature may offer a richer selection

    select_ids = getattr(search, "select_ids", None)
    if select_ids is not None:
        found: tuple[list[int], bool] = await select_ids(console, params, MAX_BULK)
        return found
    flt = parse_query(params).filter
    rows = await console.runtime.spool.find(flt, limit=MAX_BULK + 1)
    return [r.id for r in rows[:MAX_BULK]], len(rows) > MAX_BULK


async def infos(console: Console, ids: Sequence[int]) -> list[MessageInfo]:
    """The metadata of ``ids`` that still exist, newest first."""
    out: list[MessageInfo] = []
    ordered = sorted(ids, reverse=True)
    for start in range(0, len(ordered), INFO_CHUNK):
        part = tuple(ordered[start:start + INFO_CHUNK])
        out += await console.runtime.spool.find(MessageFilter(ids=part), limit=len(part))
    return out


def preview_of(rows: Sequence[MessageInfo]) -> Preview:
    """Counts by status, sender and type, and a sample of control ids."""
    statuses = Counter(r.status for r in rows)
    ids = [r.id for r in rows]
    return Preview(count=len(rows), statuses=dict(statuses),
                   senders=Counter(r.sender for r in rows).most_common(10),
                   types=Counter(r.message_type for r in rows).most_common(10),
                   sample=[r.control_id for r in rows[:SAMPLE]],
                   first_id=min(ids) if ids else None, last_id=max(ids) if ids else None)


class Selections:
    """Selections waiting for their confirm, by token (in memory: a restart forgets them,
    and the user previews again)."""

    def __init__(self, ttl_s: float = TOKEN_TTL_S, most: int = MAX_TOKENS) -> None:
        self.ttl_s = ttl_s
        self.most = most
        self._held: OrderedDict[str, Selection] = OrderedDict()

    def hold(self, selection: Selection) -> str:
        """Keep ``selection``; the token the confirm form sends back."""
        self._expire()
        while len(self._held) >= self.most:
            self._held.popitem(last=False)
        token = secrets.token_urlsafe(24)
        self._held[token] = selection
        return token

    def take(self, token: str, user: str) -> Selection:
        """The selection for ``token`` (used up), if ``user`` made it; Denied(409) if not."""
        self._expire()
        selection = self._held.get(token)
        if selection is None or selection.user != user:
            raise Denied(409, "this confirmation has expired or was used already: "
                              "go back to the messages, select them and preview again")
        del self._held[token]
        return selection

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, s in self._held.items() if now - s.created > self.ttl_s]:
            del self._held[token]
