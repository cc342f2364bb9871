"""uvicorn for servers inside an ``hl7gw`` process: the signals stay with the process.

``uvicorn.Server.serve`` replaces the SIGINT and SIGTERM handlers while it runs, so a
signal only stops that one HTTP server: inside ``hl7gw dev up`` (two such servers next to
the gateway and the bridge) Ctrl-C was taken by them and the command never stopped.
:class:`QuietServer` leaves the signals to :mod:`hl7gw.shutdown`; whoever runs it stops it
with ``should_exit`` (see :func:`stop_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn

__all__ = ["QuietServer", "stop_server"]


class QuietServer(uvicorn.Server):
    """A ``uvicorn.Server`` that installs no signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's hook for its handlers: none here."""
        yield


async def stop_server(server: uvicorn.Server, task: asyncio.Future[Any],
                      within: float) -> None:
    """Ask ``server`` (served by ``task``) to finish its requests in flight within
    ``within`` seconds, then close the rest; the port is free when this returns.

    Cancelling the task instead makes uvicorn log a ``CancelledError`` traceback.
    """
    server.should_exit = True
    _, late = await asyncio.wait({task}, timeout=within)
    if late:
        server.force_exit = True
        _, late = await asyncio.wait({task}, timeout=1.0)
    if late:
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)
