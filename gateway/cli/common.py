"""What every ``hl7gw`` command shares: loading the config, failing with one line, daemons."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from mappers.errors import Hl7gwError

CONFIG_HELP = "Gateway config file (YAML), e.g. samples/gateway.yaml."


def fail(exc: Exception) -> NoReturn:
    """Say ``error: <exc>`` on stderr and exit 2: the answer to every refused request."""
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def load_config(config: Path) -> Any:
    """The gateway settings from ``config``, or exit 2 naming what is wrong in it."""
    from gateway.config import load_settings

    try:
        return load_settings(config)
    except Hl7gwError as exc:
        fail(exc)


def run_until_signal(start: Callable[[], Awaitable[Any]],
                     stop: Callable[[], Awaitable[Any]]) -> None:
    """Run ``start()``, wait for SIGINT/SIGTERM, then ``stop()``: the shape of every daemon."""

    async def runner() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await start()
        try:
            await stopping.wait()
        finally:
            await stop()

    asyncio.run(runner())
