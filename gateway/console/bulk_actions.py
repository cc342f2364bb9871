"""What a confirmed bulk replay or reprocess does to the spool.

Both end the same way as the single-message Replay: rows go back to ``pending`` with
``replays + 1``, and the publisher maps them with the profiles live then and publishes
them under a new event id (``<event id>-r<n>``). Pending rows are left as they are (they
are about to be published anyway).

- **replay** queues every published or failed row of the selection, whatever the mapper
  makes of it now; a row the current profiles cannot map ends up ``failed`` again.
- **reprocess** first maps each row with the current profiles, here, and queues only the
  rows that map; the others are left exactly as they were (a published row stays
  published) and are listed with the reason. It is the safe way to roll a profile fix
  over many messages: a broken profile cannot turn published rows into failed ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.requests import Request

from gateway.console.bulk_select import Selection, infos
from gateway.console.core import Caller, Console, peer_of
from gateway.replay import Actor
from gateway.spool import MessageInfo

CHUNK = 100  # rows mapped per worker-thread hop


@dataclass
class Done:
    """What a confirmed replay or reprocess did."""

    queued: list[int]
    skipped_pending: int
    not_mapped: dict[int, str] = field(default_factory=dict)


def _actor(request: Request, caller: Caller) -> Actor:
    return Actor(caller.user.name, caller.user.role, peer_of(request))


async def run(console: Console, request: Request, caller: Caller, selection: Selection
              ) -> Done:
    """Replay or reprocess ``selection``; one audit line either way."""
    rows = await infos(console, selection.ids)
    pending = sum(1 for r in rows if r.status == "pending")
    settled = [r.id for r in rows if r.status != "pending"]
    action = f"bulk_{selection.action}"
    if selection.action == "replay":
        queued = await console.replays.replay_many(settled, _actor(request, caller),
                                                   action=action,
                                                   filter=selection.audit_filter)
        return Done(queued, pending)
    not_mapped = await unmappable(console, [r for r in rows if r.status != "pending"])
    mapped = [i for i in settled if i not in not_mapped]
    note = f"; {len(not_mapped)} not mapped now, left as they were" if not_mapped else ""
    queued = await console.replays.replay_many(mapped, _actor(request, caller),
                                               action=action, filter=selection.audit_filter,
                                               note=note)
    return Done(queued, pending, not_mapped)


async def unmappable(console: Console, rows: Sequence[MessageInfo]) -> dict[int, str]:
    """Rows the current profiles cannot map, with why (mapped in a worker thread)."""
    out: dict[int, str] = {}
    for start in range(0, len(rows), CHUNK):
        part = rows[start:start + CHUNK]
        bodies = [(info, await console.runtime.spool.body(info.id)) for info in part]

        def check(items: list[tuple[MessageInfo, bytes]]) -> dict[int, str]:
            found: dict[int, str] = {}
            for info, raw in items:
                _, _, view = console.map_row(raw, info.listener, info.charset, info.timezone)
                if view.bundle is None:
                    found[info.id] = view.error or "no Bundle"
            return found

        present = [(info, body.raw) for info, body in bodies if body is not None]
        out |= await asyncio.to_thread(check, present)
    return out
