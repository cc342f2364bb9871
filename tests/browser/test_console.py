"""The web console in a real browser: Debian's Chromium, headless, driven by Playwright.

A gateway (real MLLP listener, SQLite spool, Kafka broker, uvicorn) is started by the test;
the browser logs in, finds a message by control id, opens it, shows its body, replays it
and maps a pasted message in the playground. Each page is saved as a screenshot under
``test-output/screenshots/`` at the repository root, for a human to look at.

Playwright's own browser downloads are never used (``playwright install`` needs the
internet); install Debian's ``chromium`` package instead (``make browser``).
"""

from __future__ import annotations

import hashlib
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
    SpoolSettings,
)
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.support import SAMPLES, with_control_id
from tests.support.browser import SHOTS, chromium_page, need_chromium

pytestmark = [pytest.mark.browser, pytest.mark.integration]

A01 = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
TOKEN = "browser-operator-token-42"


@pytest.fixture
async def gateway(tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
                  ) -> AsyncIterator[GatewayService]:
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="browser", port=0)],
        http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic),
        console=ConsoleSettings(
            audit_path=tmp_path / "audit.jsonl", sample_interval_s=0.5,
            users=[ConsoleUser(name="olga", role="operator",
                               token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest())]))
    async with GatewayService(settings) as running:
        yield running


async def test_console_in_chromium(gateway: GatewayService) -> None:
    need_chromium()
    from playwright.async_api import expect

    async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
        for cid in ("BRW-1", "BRW-2", "BRW-3"):
            assert ack_code_of((await mllp.send(with_control_id(A01, cid))).decode()) == "CA"
        refused = with_control_id(A01.replace(b"ADT^A01", b"ADT^A99", 1), "BRW-BAD")
        assert ack_code_of((await mllp.send(refused)).decode()) == "CR"
    for old in SHOTS.glob("[0-9][0-9]-*.png"):  # this test's own; other pages keep theirs
        old.unlink()
    SHOTS.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{gateway.http_port}"

    async with chromium_page(SHOTS, 1400, 1000) as (page, shot):
        # Login: the console sends us to the form, a wrong token is refused.
        await page.goto(f"{base}/console")
        await expect(page).to_have_url(f"{base}/console/login?next=/console")
        await page.fill("#token", "wrong")
        await page.click("button[type=submit]")
        await expect(page.locator("#login-problem")).to_contain_text("not valid")
        await shot("01-login")
        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        await expect(page).to_have_url(f"{base}/console")
        await expect(page.locator(".user")).to_contain_text("olga")
        await expect(page.locator("svg.chart").first).to_be_visible()
        await shot("02-dashboard")

        # Find a message by control id through the filter form.
        await page.click("nav >> text=Messages")
        await expect(page.locator("#messages tbody tr")).to_have_count(3)
        await page.fill("input[name=control_id]", "BRW-2")
        await page.click("#filter button[type=submit]")
        rows = page.locator("#messages tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first.locator(".control-id")).to_have_text("BRW-2")
        await shot("03-messages-filtered")

        # Open it; wait until the publisher has sent it to Kafka.
        await rows.first.locator("a").first.click()
        await expect(page.locator("h1")).to_contain_text("Message")
        for _ in range(100):
            if await page.locator("#status").inner_text() == "published":
                break
            await page.wait_for_timeout(200)
            await page.reload()
        await expect(page.locator("#status")).to_have_text("published")
        await expect(page.locator("#replays")).to_have_text("0")
        await expect(page.locator("#mapped-with")).to_contain_text("without a sender profile")
        await shot("04-message")

        # The body: segments with named fields next to the Bundle.
        await page.click("#show-body")
        await expect(page.locator("table.segment tr", has_text="PID-5")).to_contain_text(
            "Patient Name")
        await expect(page.locator("#bundle")).to_contain_text('"resourceType": "Bundle"')
        await expect(page.locator("#ack")).to_contain_text("MSA|CA|BRW-2")
        await shot("05-message-body")

        # Replay: queued, then published again with replays = 1.
        await page.click("#replay")
        await expect(page.locator("#notice")).to_contain_text("Queued for replay")
        for _ in range(100):
            if (await page.locator("#replays").inner_text() == "1"
                    and await page.locator("#status").inner_text() == "published"):
                break
            await page.wait_for_timeout(200)
            await page.reload()
        await expect(page.locator("#replays")).to_have_text("1")
        await expect(page.locator("#status")).to_have_text("published")
        await shot("06-message-replayed")

        # Playground: pasted text is mapped live (script), and by the Map button (form).
        await page.click("nav >> text=Playground")
        pasted = with_control_id(A01, "PLAY-1").decode().replace("\r", "\n")
        await page.fill("#text", pasted)
        await expect(page.locator("#pg-bundle")).to_contain_text('"resourceType": "Bundle"')
        await expect(page.locator("#pg-bundle")).to_contain_text("PLAY-1")
        await shot("07-playground-live")
        await page.fill("#text", "MSH|^~\\&|APP|FAC")
        await expect(page.locator("#pg-error")).to_contain_text("MSH-9")
        await page.fill("#text", pasted)
        await page.click("#map")
        await expect(page.locator("#pg-bundle")).to_contain_text("PLAY-1")
        await expect(page.locator("#pg-explain")).not_to_be_empty()
        await shot("08-playground-mapped")

        # Rejected: the refusal is listed with its reason; reprocessing refuses it again.
        await page.click("nav >> text=Rejected")
        await expect(page.locator("#rejected tbody tr")).to_have_count(1)
        await expect(page.locator("#rejected tbody")).to_contain_text("BRW-BAD")
        await page.locator("#rejected tbody a").first.click()
        await page.click("#reprocess")
        await expect(page.locator("#reprocess-result")).to_contain_text("refused again")
        await shot("09-rejected-reprocessed")
        await page.reload()  # the result page came by redirect: nothing is sent again
        await expect(page.locator("#reprocess-result")).to_contain_text("refused again")
        await page.click("nav >> text=Rejected")
        await expect(page.locator("#rejected tbody tr")).to_have_count(2)

        # The audit page lists the body view and the replay.
        await page.click("nav >> text=Audit")
        audit = page.locator("#audit tbody")
        await expect(audit).to_contain_text("view_body")
        await expect(audit).to_contain_text("replay")
        await expect(audit).to_contain_text("reprocess")
        await shot("10-audit")

        # Back on the dashboard, the charts show the traffic of this test.
        await page.click("nav >> text=Dashboard")
        await expect(page.locator("svg.chart polyline").first).to_be_visible()
        await shot("11-dashboard-with-traffic")
