"""The console's Outbound page in headless Chromium: a result the EHR refused (AR) is
listed with its ACK, its message and ACK are shown, and Replay sends it again (AA).

Real parts: a Kafka broker (results published as the bridge does), the gateway's outbound
queue in a SQLite spool, a local EHR over MLLP. Screenshots under
``test-output/screenshots/outbound-*.png``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.kafka import EventProducer
from connectors.results import publish_result
from connectors.settings import KafkaSettings
from gateway.config import (
    ConsoleSettings,
    ConsoleUser,
    GatewaySettings,
    HttpSettings,
    ListenerSettings,
    SpoolSettings,
)
from gateway.dev.ehr import LocalEhr
from gateway.outbound.settings import DestinationSettings, OutboundSettings
from gateway.service import GatewayService
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, need_chromium
from tests.support.outbound import cause, result

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TOKEN = "browser-outbound-operator-7"


@pytest.fixture
async def ehr() -> AsyncIterator[LocalEhr]:
    async with LocalEhr() as running:
        yield running


@pytest.fixture
async def gateway(tmp_path: Path, kafka_bootstrap: str, kafka_topic: str, ehr: LocalEhr
                  ) -> AsyncIterator[GatewayService]:
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="browser", port=0)],
        http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=f"{kafka_topic}.in"),
        outbound=OutboundSettings(topic=kafka_topic, group_id=f"g-{kafka_topic}",
                                  destinations=[DestinationSettings(
                                      name="ehr", host="127.0.0.1", port=ehr.port,
                                      backoff_initial_s=0.05)]),
        console=ConsoleSettings(
            audit_path=tmp_path / "audit.jsonl",
            users=[ConsoleUser(name="olga", role="operator",
                               token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest())]))
    async with GatewayService(settings) as running:
        yield running


async def test_outbound_page_shows_a_refused_result_and_replays_it(
        gateway: GatewayService, ehr: LocalEhr, kafka_bootstrap: str,
        kafka_topic: str) -> None:
    need_chromium()
    from playwright.async_api import async_playwright, expect

    ehr.script(["AR"])
    async with EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap)) as producer:
        await publish_result(producer, cause(1), result(1), topic=kafka_topic)
    await ehr.wait_for(1, 60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{gateway.http_port}"

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(15_000)
            await page.goto(f"{base}/console/login?next=/console/outbound")
            await page.fill("#token", TOKEN)
            await page.click("button[type=submit]")
            await expect(page).to_have_url(f"{base}/console/outbound")
            row = page.locator("#outbound tbody tr").first
            for _ in range(100):  # the AR is recorded a moment after the EHR got it
                if "failed" in await row.inner_text():
                    break
                await page.wait_for_timeout(100)
                await page.reload()
            await expect(row).to_contain_text("failed")
            await expect(row).to_contain_text("AR")
            await expect(page.locator("#destinations")).to_contain_text("127.0.0.1")
            await page.screenshot(path=str(SHOTS / "outbound-1-list.png"), full_page=True)

            await row.locator("a").first.click()
            await expect(page.locator("#status")).to_have_text("failed")
            await page.click("#show-body")
            await expect(page.locator("#message")).to_contain_text("ORU^R01")
            await expect(page.locator("#ack")).to_contain_text("MSA|AR|")
            await page.screenshot(path=str(SHOTS / "outbound-2-refused.png"), full_page=True)

            await page.click("#replay")  # the EHR answers AA this time
            await expect(page.locator(".notice")).to_contain_text("Queued again")
            for _ in range(100):
                if await page.locator("#status").inner_text() == "sent":
                    break
                await page.wait_for_timeout(100)
                await page.reload()
            await expect(page.locator("#status")).to_have_text("sent")
            await expect(page.locator("#ack-code")).to_have_text("AA")
            await page.screenshot(path=str(SHOTS / "outbound-3-replayed.png"), full_page=True)
        finally:
            await browser.close()
    assert [r.ack_code for r in ehr.received] == ["AR", "AA"]
    audit = await asyncio.to_thread(gateway.settings.console.audit_path.read_text)
    assert '"outbound_body"' in audit and '"outbound_replay"' in audit
