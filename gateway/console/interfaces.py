"""The Interfaces page: every listener and sender, their connections, counts and silences;
outbound destinations too.

``GET /console/interfaces`` and ``GET /api/v1/interfaces`` (viewer) show, per MLLP
listener, its address, TLS, the connections open now (peer, since when, messages on it)
and every sender seen on it in the last 24 h or configured under its ``senders:``: the
connection state, last message, counts per ACK code and per message type over 1 h and
24 h, the error ratio and the silence marker (rules in gateway/console/interfaces_view.py).
Outbound destinations show their queue, oldest queued message and last ACK.

Counts are read from the spool (they survive restarts) on a read-only connection in a
worker thread: the last day's rows once, then only the rows new since the previous read
(gateway/console/interfaces_stats.py), at most every ``CACHE_S`` seconds however many
people reload the page. Connection state is read live.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gateway.config import ListenerSettings
from gateway.console.core import Console
from gateway.console.deps import Viewer
from gateway.console.interfaces_stats import SenderTraffic, TrafficTally, read_stats
from gateway.console.interfaces_view import (
    MIN_MESSAGES,
    MIN_SILENCE_S,
    SILENCE_FACTOR,
    listener_json,
)
from gateway.console.pages import make_environment
from gateway.console.schemas import InterfacesOut
from gateway.mllp.server import MllpListener

CACHE_S = 10.0


class TrafficCache:
    """Spool counts per sender (a :class:`TrafficTally`), brought up to date when older
    than ``CACHE_S``, by one request at a time."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._tally = TrafficTally()
        self._lock = asyncio.Lock()
        self._at = 0.0
        self._traffic: list[SenderTraffic] = []

    async def traffic(self, now: float) -> list[SenderTraffic]:
        """The counts, at most ``CACHE_S`` old."""
        async with self._lock:
            if now - self._at > CACHE_S:
                spool = self.console.runtime.spool
                await spool.flush()  # journaled rows into SQLite: an ACKed one is counted
                self._traffic = await read_stats(spool.path, self._tally.update, now)
                self._at = now
            return self._traffic


def _listeners(console: Console) -> list[MllpListener]:
    found = getattr(console.runtime, "listeners", [])
    return [ls for ls in found if isinstance(ls, MllpListener)]


async def interfaces_json(console: Console, cache: TrafficCache) -> dict[str, Any]:
    """Listeners, senders and outbound destinations, as the API and the page show them."""
    now = time.time()
    traffic = await cache.traffic(now)
    running = {ls.settings.name: ls for ls in _listeners(console)}
    configured = list(console.runtime.settings.listeners)
    names = {ls.name for ls in configured}
    # a listener renamed or removed still shows its last day's traffic
    configured += [ListenerSettings(name=name) for name in
                   sorted({t.listener for t in traffic} - names)]
    listeners = []
    for settings in configured:
        live = running.get(settings.name)
        listeners.append(listener_json(
            settings, live.port if live else settings.port,
            live.open_connections() if live else [], traffic, now,
            running=live is not None, configured=settings.name in names))
    outbound = getattr(console.runtime, "outbound", None)
    destinations = (await outbound.status())["destinations"] if outbound is not None else {}
    return {"generated_at": now, "listeners": listeners, "destinations": destinations,
            "silence_rule": {"factor": SILENCE_FACTOR, "min_silence_s": MIN_SILENCE_S,
                             "min_messages": MIN_MESSAGES}}


def build_router(console: Console) -> APIRouter:
    """This feature's pages (under /console) and API routes (under /api/v1)."""
    router = APIRouter()
    env = make_environment()
    cache = TrafficCache(console)

    @router.get("/api/v1/interfaces", response_model=InterfacesOut)
    async def interfaces_api(_: Viewer) -> dict[str, Any]:
        """Listeners (connections, senders with counts and silences) and destinations."""
        return await interfaces_json(console, cache)

    @router.get("/console/interfaces")
    async def interfaces_page(request: Request, caller: Viewer) -> HTMLResponse:
        data = await interfaces_json(console, cache)
        html = env.get_template("interfaces.html").render(
            data=data, cache_s=CACHE_S, user=caller.user, path=request.url.path,
            csrf=caller.session.csrf if caller.session else "")
        return HTMLResponse(html)

    return router
