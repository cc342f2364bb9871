"""The dead-letter and alert pages in headless Chromium (Debian's, through Playwright).

A gateway with a bridge section (so it knows the DLQ topic) and two alert rules runs
against a real broker; two dead letters are put on the DLQ topic as the bridge writes
them. The browser lists them, ticks one, sees the count to confirm, confirms, and finds it
marked redriven (and on the bridge's topic); the dashboard shows the silent-sender alert
firing and /console/alerts lists both rules with their states. Screenshots go to
``test-output/screenshots/dead-letters/``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connectors.settings import BridgeSettings, KafkaSettings
from gateway.alerts.settings import AlertSettings
from gateway.config import (
    ConsoleSettings,
    ConsoleUser,
    GatewaySettings,
    HttpSettings,
    ListenerSettings,
    SpoolSettings,
)
from gateway.service import GatewayService
from tests.integration.conftest import read_records
from tests.integration.test_dead_letters_api import put_dead_letters
from tests.support.browser import SHOTS, chromium_page, need_chromium

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TOKEN = "browser-dlq-operator-5"
OUT = SHOTS / "dead-letters"


@pytest.fixture
async def gateway(tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
                  ) -> AsyncIterator[GatewayService]:
    alerts = AlertSettings.model_validate({"interval_s": 0.2, "rules": [
        {"name": "lab-silent", "kind": "silent_sender", "sender": "NOBODY",
         "minutes": 0.01, "severity": "critical"},
        {"name": "backlog", "kind": "spool_depth", "above": 1000, "for": "1m"}]})
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="browser", port=0)],
        http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic),
        bridge=BridgeSettings(topic=kafka_topic, group_id=f"g-{kafka_topic}",
                              target_url="http://127.0.0.1:9/events"),
        alerts=alerts,
        console=ConsoleSettings(
            audit_path=tmp_path / "audit.jsonl", sample_interval_s=0.5,
            users=[ConsoleUser(name="olga", role="operator",
                               token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest())]))
    await put_dead_letters(kafka_bootstrap, f"{kafka_topic}.dlq", kafka_topic)
    async with GatewayService(settings) as running:
        yield running


async def test_dead_letters_and_alerts_in_chromium(gateway: GatewayService,
                                                   kafka_bootstrap: str,
                                                   kafka_topic: str) -> None:
    need_chromium()
    from playwright.async_api import expect

    for old in OUT.glob("*.png"):
        old.unlink()
    OUT.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{gateway.http_port}"

    async with chromium_page(OUT, 1400, 900) as (page, shot):
        await page.goto(f"{base}/console/dead-letters")
        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        await expect(page).to_have_url(f"{base}/console/dead-letters")

        rows = page.locator("#dead-letters tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_contain_text("evt-2")
        await expect(rows.nth(0)).to_contain_text("400")
        await expect(rows.nth(1)).to_contain_text("DeliveryError")
        await expect(rows.nth(1)).to_contain_text("pk-1")
        await shot("01-dead-letters")

        # tick the older one, redrive: first a count to confirm, then it is sent
        await page.check("input[name=event][value='0:0']")
        await page.click("#dlq-redrive")
        await expect(page.locator("#dlq-count")).to_have_text("1")
        await expect(page.locator("#dlq-confirm")).to_contain_text(kafka_topic)
        await shot("02-redrive-confirm")
        await page.click("#dlq-confirm-button")
        await expect(page.locator("#dlq-notice")).to_contain_text("Sent 1 event(s)")
        await expect(page.locator("#dead-letters tbody tr.dlq-redriven")).to_have_count(1)
        await expect(page.locator("#dead-letters tbody tr.dlq-redriven")).to_contain_text(
            "evt-1")
        await shot("03-redriven")
        [record] = await read_records(kafka_bootstrap, kafka_topic, 1)
        assert dict(record.headers)["ce_id"] == b"evt-1"
        assert not any(name.startswith("dlq_") for name, _ in record.headers)

        # an event's body (operator)
        await page.click("#dead-letters a >> text=0:1")
        await expect(page.locator("#dlq-value")).to_contain_text("Bundle")
        await expect(page.locator("#dlq-headers")).to_contain_text("dlq_http_status")
        await shot("04-dead-letter-body")

        # usable at 800 px: the table scrolls in its box, the page does not
        await page.set_viewport_size({"width": 800, "height": 900})
        await page.goto(f"{base}/console/dead-letters")
        await expect(rows).to_have_count(2)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 800, f"the page is {width} px wide at 800 px"
        box = page.locator(".dlq-scroll")  # the table keeps its columns and scrolls
        assert await box.evaluate("e => e.scrollWidth > e.clientWidth")
        await shot("05-dead-letters-800px")
        await page.set_viewport_size({"width": 1400, "height": 900})

        # the silent-sender rule fires within a second; the dashboard shows it
        deadline = time.monotonic() + 20
        await page.goto(f"{base}/console")
        while not await page.locator("#alerts-firing").count():
            assert time.monotonic() < deadline, "the alert never showed on the dashboard"
            await page.wait_for_timeout(300)
            await page.goto(f"{base}/console")
        await expect(page.locator("#alerts-firing")).to_contain_text("lab-silent")
        await expect(page.locator("#alerts-firing")).to_contain_text("critical")
        await expect(page.locator("#alerts-firing")).not_to_contain_text("backlog")
        await shot("06-dashboard-alert")
        async with httpx.AsyncClient(base_url=base, timeout=15) as client:
            metrics = (await client.get("/metrics")).text
        assert 'hl7gw_alerts_firing{rule="lab-silent"} 1.0' in metrics
        assert 'hl7gw_alerts_firing{rule="backlog"} 0.0' in metrics

        await page.click("nav >> text=Alerts")
        table = page.locator("#alert-rules tbody tr")
        await expect(table).to_have_count(2)
        await expect(table.nth(0)).to_contain_text("lab-silent")
        await expect(table.nth(0).locator(".state")).to_have_text("firing")
        await expect(table.nth(1).locator(".state")).to_have_text("ok")
        await expect(table.nth(1)).to_contain_text("1000")
        await shot("07-alerts")
