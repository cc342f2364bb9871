"""Bulk actions, the raw view, components and the Bundle diff in headless Chromium.

The browser ticks messages on the Messages page, previews a replay and confirms it,
exports a selection as a file, copies and downloads a raw message, reads PID-3 split into
repetitions and components, and sees the element a profile change touches highlighted on
the diff page. Screenshots go to ``test-output/screenshots/bulk-and-diff/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.settings import KafkaSettings
from gateway.ack import ack_code_of
from gateway.config import (
    ConsoleSettings,
    ConsoleUser,
    GatewaySettings,
    HttpSettings,
    ListenerSettings,
    ProfilesSettings,
    SpoolSettings,
)
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from gateway.spool import MessageFilter
from tests.support import SAMPLES, with_control_id
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, need_chromium

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots" / "bulk-and-diff"
A01 = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
TOKEN = "bulk-browser-operator-token-7"
PROFILE = """\
profile: goodhealth
match: {application: EPICADT, facility: GOODHEALTH}
codes:
  "0001": {M: female}
"""


@pytest.fixture
async def gateway(tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
                  ) -> AsyncIterator[GatewayService]:
    (tmp_path / "profiles").mkdir()
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="browser", port=0)],
        http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic),
        profiles=ProfilesSettings(dir=tmp_path / "profiles", watch_interval_s=0),
        console=ConsoleSettings(
            audit_path=tmp_path / "audit.jsonl",
            users=[ConsoleUser(name="olga", role="operator",
                               token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest())]))
    async with GatewayService(settings) as running:
        yield running


async def all_published(gateway: GatewayService, count: int, replays: int = 0) -> list[int]:
    """Row ids (oldest first) once ``count`` rows are published ``replays`` times; 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = await gateway.spool.find(MessageFilter(), limit=100)
        if len(rows) == count and all(r.status == "published" and r.replays >= replays
                                      for r in rows):
            return sorted(r.id for r in rows)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{count} messages were not published (replays {replays}) in 60 s")


async def test_bulk_raw_components_and_diff_in_chromium(gateway: GatewayService,
                                                        tmp_path: Path) -> None:
    need_chromium()
    from playwright.async_api import async_playwright, expect

    async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
        for cid in ("BD-1", "BD-2", "BD-3"):
            assert ack_code_of((await mllp.send(with_control_id(A01, cid))).decode()) == "CA"
    ids = await all_published(gateway, 3)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    base = f"http://127.0.0.1:{gateway.http_port}"

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000},
                                                accept_downloads=True)
            await context.grant_permissions(["clipboard-read", "clipboard-write"],
                                            origin=base)
            page = await context.new_page()
            page.set_default_timeout(15_000)

            async def shot(name: str) -> None:
                await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

            await page.goto(f"{base}/console/login")
            await page.fill("#token", TOKEN)
            await page.click("button[type=submit]")
            await expect(page.locator(".user")).to_contain_text("olga")

            # Tick two messages, preview the replay: nothing has changed yet.
            await page.goto(f"{base}/console/messages")
            await expect(page.locator("#messages tbody tr")).to_have_count(3)
            for row_id in (ids[0], ids[2]):
                await page.check(f"#messages input[name=id][value='{row_id}']")
            await shot("00-messages-ticked")
            await page.click("#bulk button[value=replay]")
            await expect(page.locator("#preview-count")).to_have_text("2")
            await expect(page.locator("#preview-sample")).to_have_text("BD-3, BD-1")
            await expect(page.locator("#explain")).to_contain_text("new event id")
            await shot("01-replay-preview")
            rows = await gateway.spool.find(MessageFilter(), limit=10)
            assert all(r.replays == 0 for r in rows)

            # Confirm: both are queued and published again; the third is untouched.
            await page.click("#confirm")
            await expect(page.locator("#queued-count")).to_have_text("2")
            await expect(page.locator("#bulk-result")).to_contain_text(
                f"rows {ids[0]}, {ids[2]}")
            await shot("02-replay-done")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                replays = {r.id: r.replays for r in await gateway.spool.find(
                    MessageFilter(status="published"), limit=10)}
                if replays == {ids[0]: 1, ids[1]: 0, ids[2]: 1}:
                    break
                await asyncio.sleep(0.2)
            assert replays == {ids[0]: 1, ids[1]: 0, ids[2]: 1}

            # Export one as NDJSON: a preview, then the file.
            await page.goto(f"{base}/console/messages")
            await page.check(f"#messages input[name=id][value='{ids[1]}']")
            await page.click("#bulk button[value=export-ndjson]")
            await expect(page.locator("#preview-count")).to_have_text("1")
            async with page.expect_download() as download_info:
                await page.click("#confirm")
            download = await download_info.value
            assert download.suggested_filename == "messages-1.ndjson"
            saved = tmp_path / "export.ndjson"
            await download.save_as(saved)
            (line,) = saved.read_text().splitlines()
            assert json.loads(line)["resourceType"] == "Bundle"

            # The message body: raw text with Copy and Download, PID-3 split up.
            await page.goto(f"{base}/console/messages/{ids[1]}?show=body")
            await expect(page.locator("#raw-text")).to_contain_text("|BD-2|")
            await page.click("#copy-raw")
            await expect(page.locator("#copy-result")).to_contain_text("Copied")
            copied = await page.evaluate("navigator.clipboard.readText()")
            assert copied.startswith("MSH|") and "|BD-2|" in copied and "\nPID|" in copied
            async with page.expect_download() as raw_info:
                await page.click("#download-raw")
            raw = await raw_info.value
            assert raw.suggested_filename == f"message-{ids[1]}.hl7"
            await raw.save_as(tmp_path / "raw.hl7")
            assert (tmp_path / "raw.hl7").read_bytes().startswith(b"MSH|^~\\&|EPICADT|")
            pid3 = page.locator("ol.reps[data-field='PID-3'] > li.rep")
            await expect(pid3).to_have_count(3)
            authority = pid3.first.locator("li.comp[data-key='PID-3.4']")
            await expect(authority).to_contain_text("Assigning Authority")
            await expect(authority.locator("li.sub[data-key='PID-3.4.2']")).to_contain_text(
                "Universal Id 2.16.840.1.113883.3.9999.1")
            await expect(pid3.nth(2).locator("li.comp[data-key='PID-3.5']")).to_contain_text(
                "PI")
            await page.locator("ol.reps[data-field='PID-3']").scroll_into_view_if_needed()
            await shot("03-raw-and-components")

            # A profile change, then the diff: the changed element highlighted on both sides.
            (tmp_path / "profiles" / "goodhealth.yaml").write_text(PROFILE)
            assert gateway.profiles.reload()
            await page.click("#diff")
            await expect(page.locator("#diff-state")).to_contain_text("1 element(s) differ")
            await expect(page.locator("#changes tbody tr")).to_have_count(1)
            await expect(page.locator("#changes")).to_contain_text("Patient.gender")
            await expect(page.locator("#diff-before .line.changed")).to_have_text(
                '      "gender": "male",')
            await expect(page.locator("#diff-after .line.changed")).to_have_text(
                '      "gender": "female",')
            colour = await page.locator("#diff-after .line.changed").evaluate(
                "e => getComputedStyle(e).backgroundColor")
            assert colour == "rgb(254, 243, 199)"  # highlighted, not plain
            await shot("04-diff")
            await page.set_viewport_size({"width": 800, "height": 1000})
            await shot("05-diff-800px")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 800, f"the diff page overflows at 800 px ({width} px)"
        finally:
            await browser.close()
