"""The console's Try a profile page in headless Chromium: paste a changed profile, run it on
the spooled messages, read the changed element count and an example, apply it, and see the
gateway map the next message with it.

Real parts: MLLP listener, SQLite spool, Kafka broker, uvicorn, a profiles folder on disk.
Screenshots under ``test-output/screenshots/trial/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
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
from gateway.mllp.client import MllpClient
from gateway.service import GatewayService
from gateway.spool import MessageFilter
from tests.integration.conftest import read_records
from tests.support import MESSAGES, PROFILES, with_control_id
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, need_chromium

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TOKEN = "browser-trial-operator-5"
VIEWER_TOKEN = "browser-trial-viewer-5"
ORU = (MESSAGES / "oru_r01.hl7").read_bytes().replace(b"\n", b"\r").strip(b"\r") + b"\r"
FLIPPED = (PROFILES / "sunlab.yaml").read_text().replace("    LOWISH: L\n",
                                                          "    LOWISH: L\n    H: L\n")
ELEMENT = "Observation.interpretation.coding.code"
OUT = SHOTS / "trial"


def v3_flags(value: bytes) -> list[str]:
    bundle: dict[str, Any] = orjson.loads(value)
    return [c["code"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
            for i in e["resource"].get("interpretation", []) for c in i["coding"]
            if c.get("system", "").endswith("v3-ObservationInterpretation")]


@pytest.fixture
async def gateway(tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
                  ) -> AsyncIterator[GatewayService]:
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES, folder)

    def user(name: str, role: str, token: str) -> ConsoleUser:
        return ConsoleUser(name=name, role=role,
                           token_sha256=hashlib.sha256(token.encode()).hexdigest())

    settings = GatewaySettings(
        listeners=[ListenerSettings(name="lab", port=0)],
        http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic),
        profiles=ProfilesSettings(dir=folder, watch_interval_s=0),
        console=ConsoleSettings(audit_path=tmp_path / "audit.jsonl",
                                users=[user("olga", "operator", TOKEN),
                                       user("vic", "viewer", VIEWER_TOKEN)]))
    async with GatewayService(settings) as running:
        yield running


async def published(gateway: GatewayService, count: int) -> None:
    """Wait (deadline 30 s) until ``count`` rows are published."""
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        rows = await gateway.spool.find(MessageFilter(status="published"), limit=count)
        if len(rows) >= count:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"fewer than {count} messages published in 30 s")


async def test_try_page_in_chromium(gateway: GatewayService, kafka_bootstrap: str,
                                    kafka_topic: str) -> None:
    need_chromium()
    from playwright.async_api import async_playwright, expect

    async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
        for cid in ("LAB-1", "LAB-2"):
            assert ack_code_of((await mllp.send(with_control_id(ORU, cid))).decode()
                               ) in ("AA", "CA")
    await published(gateway, 2)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    base = f"http://127.0.0.1:{gateway.http_port}"
    folder = gateway.profiles.settings.dir
    assert folder is not None

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)

            async def shot(name: str, full_page: bool = True) -> None:
                await page.screenshot(path=str(OUT / f"{name}.png"), full_page=full_page)

            async def login(token: str) -> None:
                await page.goto(f"{base}/console/login")
                await page.fill("#token", token)
                await page.click("button[type=submit]")
                await expect(page).to_have_url(f"{base}/console")

            # A viewer is told the page needs the operator role.
            await login(VIEWER_TOKEN)
            response = await page.goto(f"{base}/console/try")
            assert response is not None and response.status == 403
            await expect(page.locator("main")).to_contain_text("operator")
            await page.click("button:has-text('Log out')")

            await login(TOKEN)
            await page.click("nav >> text=Try a profile")
            await expect(page.locator("h1")).to_have_text("Try a profile change")
            await expect(page.locator("#trials")).to_contain_text("No trials yet")

            # A mistake is shown as file:line: field, the pasted text kept.
            broken = FLIPPED.replace('"0078":', '"9999":')
            await page.fill("#yaml", broken)
            await page.click("#run")
            await expect(page.locator("#try-problem")).to_contain_text(
                "pasted.yaml:")
            await expect(page.locator("#try-problem")).to_contain_text(
                "codes.9999: unknown code table")
            await expect(page.locator("#yaml")).to_have_value(broken)
            await shot("01-bad-profile")

            # The changed profile: run, the page refreshes itself until the report is there.
            await page.fill("#yaml", FLIPPED)
            await page.fill("#since", "1h")
            await page.click("#run")
            await expect(page.locator("#try-state")).to_have_text("done", timeout=30_000)
            await expect(page.locator("#n-tried")).to_have_text("2")
            await expect(page.locator("#n-changed")).to_have_text("2")
            row = page.locator("#try-elements tr", has_text=ELEMENT)
            await expect(row.locator("td").nth(1)).to_have_text("2")
            example = page.locator("#try-examples tr", has_text="interpretation")
            await expect(example.locator("code.before").first).to_have_text("H")
            await expect(example.locator("code.after").first).to_have_text("L")
            await expect(example.first).to_contain_text("LAB-")
            await shot("02-report")
            assert (folder / "sunlab.yaml").read_text() != FLIPPED  # nothing written yet

            # The report reads at 800 px too: no page-wide horizontal scroll.
            await page.set_viewport_size({"width": 800, "height": 900})
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 800, f"page is {width} px wide at 800 px"
            await shot("03-report-800px")
            await page.set_viewport_size({"width": 1280, "height": 900})

            # Apply: written, reloaded, said so.
            generation = gateway.profiles.generation
            await page.click("#apply")
            await expect(page.locator("#try-notice")).to_contain_text("Applied")
            await expect(page.locator("#try-state")).to_have_text("applied")
            assert gateway.profiles.generation == generation + 1
            assert (folder / "sunlab.yaml").read_text() == FLIPPED
            await shot("04-applied")

            # The gateway now maps new messages with it: published with L, not H.
            async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
                await mllp.send(with_control_id(ORU, "LAB-3"))
            await published(gateway, 3)
            records = await asyncio.wait_for(read_records(kafka_bootstrap, kafka_topic, 3), 30)
            before = next(r for r in records if b"LAB-1" in r.value)
            after = next(r for r in records if b"LAB-3" in r.value)
            assert v3_flags(before.value)[0] == "H" and v3_flags(after.value)[0] == "L"
            await page.goto(f"{base}/console/messages?control_id=LAB-3")
            await page.locator("#messages tbody a").first.click()
            await page.click("#show-body")
            await expect(page.locator("#bundle")).to_contain_text("v3-ObservationInterpretation")
            await expect(page.locator("#mapped-with")).to_contain_text("sunlab")
            await shot("05-new-message-mapped-with-it", full_page=False)

            # The trial list and the audit page show the runs and the apply.
            await page.goto(f"{base}/console/try")
            await expect(page.locator("#trials tbody")).to_contain_text("applied")
            await page.click("nav >> text=Audit")
            audit = page.locator("#audit tbody")
            await expect(audit).to_contain_text("profile_try")
            await expect(audit).to_contain_text("profile_apply")
            await shot("06-audit")

            # Upload the old profile: every message would change back; discard it.
            await page.goto(f"{base}/console/try")
            await page.set_input_files("#upload", str(PROFILES / "sunlab.yaml"))
            await page.click("#run")
            await expect(page.locator("#try-state")).to_have_text("done", timeout=30_000)
            await expect(page.locator("table.meta")).to_contain_text("from sunlab.yaml")
            await expect(page.locator("#n-changed")).to_have_text("3")
            await page.click("#discard")
            await expect(page.locator("#try-notice")).to_contain_text("Discarded")
            await expect(page.locator("#apply")).to_have_count(0)
            assert (folder / "sunlab.yaml").read_text() == FLIPPED
            await shot("07-uploaded-and-discarded")
        finally:
            await browser.close()
