"""Headless Chromium for the console's browser tests: Debian's package, driven by Playwright.

Playwright's own browser downloads are never used (``playwright install`` needs the
internet); install Debian's ``chromium`` package instead (``make browser``). Each test saves
its screenshots in a folder of its own under ``test-output/screenshots/``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import REPO

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOTS = REPO / "test-output" / "screenshots"
TIMEOUT_MS = 15_000  # each wait; holds on a loaded 2-core machine

Shot = Callable[[str], Awaitable[None]]


def need_chromium() -> None:
    """Fail in CI (it must run there), skip elsewhere, when Chromium is not installed."""
    if CHROMIUM.exists():
        return
    why = (f"{CHROMIUM} not found: install Debian's chromium package "
           "(apt-get install chromium, or `make browser`)")
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@asynccontextmanager
async def chromium_page(shots: Path, width: int = 1400, height: int = 1000,
                        **context: Any) -> AsyncIterator[tuple[Page, Shot]]:
    """A page in a fresh headless Chromium, and ``shot(name)`` saving a full-page
    screenshot as ``shots/<name>.png``; the browser is closed on the way out.
    ``context`` goes to ``new_context`` (permissions, downloads...)."""
    need_chromium()
    from playwright.async_api import async_playwright

    await asyncio.to_thread(shots.mkdir, parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            ctx = await browser.new_context(viewport={"width": width, "height": height},
                                            **context)
            page = await ctx.new_page()
            page.set_default_timeout(TIMEOUT_MS)

            async def shot(name: str) -> None:
                await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

            yield page, shot
        finally:
            await browser.close()
