"""The Interfaces page and the dashboard's charts in headless Chromium, over real MLLP.

Two senders talk to one listener: SUNLAB (configured under the listener's ``senders:``)
stays connected after two messages; OTHERLAB (not configured) sends one message, one the
listener refuses, and hangs up. The Interfaces page must show both with their counts and
connection state; the dashboard's charts must have a legend in distinct colours and a time
axis with ticks; and no console page may overflow an 800 px wide window. Screenshots under
``test-output/screenshots/interfaces/``.
"""

from __future__ import annotations

import asyncio
import hashlib
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
    SenderSettings,
    SpoolSettings,
)
from gateway.mllp.client import MllpClient
from gateway.mllp.framing import encode_frame
from gateway.service import GatewayService
from tests.browser.test_console import A01
from tests.support import with_control_id, with_msh
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, need_chromium

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TOKEN = "browser-interfaces-operator-3"
OUT = SHOTS / "interfaces"
SUNLAB = with_msh(A01, f3="SUNLAB",
                  f4="RIVERSIDE^2.16.840.1.113883.19.5.99999.1.2.3.4.5.6.7.8.9.10^ISO")
OTHERLAB = with_msh(A01, f3="OTHERLAB", f4="CLINIC")
PAGES = ("/console", "/console/interfaces", "/console/messages", "/console/rejected",
         "/console/messages/1", "/console/messages/1?show=body", "/console/rejected/1",
         "/console/rejected/1?show=body", "/console/playground", "/console/audit")
# pages whose answer depends on other sections of the config (no outbound: is a 404 page):
# whatever they answer must fit too
OTHER_PAGES = ("/console/outbound", "/console/dead-letters", "/console/alerts",
               "/console/try", "/console/no-such-page")


@pytest.fixture
async def gateway(tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
                  ) -> AsyncIterator[GatewayService]:
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="lab", port=0, senders=[
            SenderSettings(application="SUNLAB", facility="RIVERSIDE")])],
        http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic),
        console=ConsoleSettings(
            audit_path=tmp_path / "audit.jsonl", sample_interval_s=0.5,
            users=[ConsoleUser(name="olga", role="operator",
                               token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest())]))
    async with GatewayService(settings) as running:
        yield running


async def test_interfaces_page_charts_and_narrow_window(gateway: GatewayService) -> None:
    need_chromium()
    from playwright.async_api import async_playwright, expect

    port = gateway.listeners[0].port
    base = f"http://127.0.0.1:{gateway.http_port}"
    async with MllpClient("127.0.0.1", port, timeout=10) as sunlab:
        # long unbroken values (a 166-character control id, an OID) are what widened tables
        for cid in ("SUN-1-" + "0123456789ABCDEF" * 10, "SUN-2"):
            assert ack_code_of((await sunlab.send(with_control_id(SUNLAB, cid))).decode()) \
                == "CA"
        refused = OTHERLAB.replace(b"ADT^A01", b"ADT^A99", 1)
        assert await _send_from("127.0.0.2", port, [with_control_id(OTHERLAB, "OTH-1"),
                                                    with_control_id(refused, "OTH-2")]) \
            == ["CA", "CR"]
        await _wait_closed(gateway, 1)  # OTHERLAB hung up; SUNLAB stays connected
        OUT.mkdir(parents=True, exist_ok=True)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM),
                                              args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 1000})
                page.set_default_timeout(15_000)
                await page.goto(f"{base}/console/login?next=/console/interfaces")
                await page.fill("#token", TOKEN)
                await page.click("button[type=submit]")
                await expect(page).to_have_url(f"{base}/console/interfaces")

                sun = page.locator("tr.sender", has_text="SUNLAB")
                other = page.locator("tr.sender", has_text="OTHERLAB")
                await expect(sun.locator(".app")).to_have_text("SUNLAB")
                await expect(sun.locator(".fac")).to_have_text("RIVERSIDE")
                await expect(sun.locator(".state")).to_have_text("connected")
                await expect(sun.locator(".counts-24h")).to_contain_text("accepted 2")
                await expect(sun).to_contain_text("configured: SUNLAB|RIVERSIDE")
                await expect(other.locator(".state")).to_have_text("not connected")
                await expect(other.locator(".counts-24h")).to_contain_text("accepted 1")
                await expect(other.locator(".counts-24h")).to_contain_text("AR 1")
                await expect(other).to_contain_text("50.0 %")
                await expect(other).to_contain_text("metrics: other")
                connections = page.locator("table.connections tbody tr")
                await expect(connections).to_have_count(1)
                await expect(connections).to_contain_text("2")  # messages on it
                await page.screenshot(path=str(OUT / "1-interfaces.png"), full_page=True)

                await page.goto(f"{base}/console")
                await page.wait_for_timeout(1500)  # a few live samples (every 0.5 s)
                await page.reload()
                history = page.locator("#history svg.chart").first
                await expect(history.locator(".x-tick").first).to_be_visible()
                assert await history.locator(".x-tick").count() >= 3
                assert await history.locator(".y-tick").count() >= 2
                swatches = history.locator("rect.swatch")
                await expect(swatches).to_have_count(3)
                fills = await swatches.evaluate_all(
                    "els => els.map(e => getComputedStyle(e).fill)")
                assert len(set(fills)) == 3, fills
                legend = await history.locator("text.legend").all_text_contents()
                assert legend == ["received", "published", "rejected"]
                assert "grey" not in fills and "rgb(100, 116, 139)" not in fills
                await expect(history.locator("polyline")).to_have_count(3)
                await page.screenshot(path=str(OUT / "2-dashboard.png"), full_page=True)

                await page.set_viewport_size({"width": 800, "height": 900})
                for path in PAGES + OTHER_PAGES:
                    response = await page.goto(f"{base}{path}")
                    assert response is not None, path
                    assert response.status == 200 or path in OTHER_PAGES, path
                    width = await page.evaluate("document.documentElement.scrollWidth")
                    assert width <= 800, f"{path} is {width} px wide at 800 px"
                    if path in ("/console/interfaces", "/console", "/console/messages"):
                        name = path.strip("/").replace("/", "-")
                        await page.screenshot(path=str(OUT / f"3-{name}-800px.png"),
                                              full_page=True)
            finally:
                await browser.close()


async def _wait_closed(gateway: GatewayService, remaining: int) -> None:
    """Until the listener holds ``remaining`` open connections (deadline 15 s)."""
    deadline = time.monotonic() + 15
    while len(gateway.listeners[0].open_connections()) != remaining:
        assert time.monotonic() < deadline, gateway.listeners[0].open_connections()
        await asyncio.sleep(0.05)


async def _send_from(source: str, port: int, messages: list[bytes]) -> list[str]:
    """Send over MLLP from another loopback address (another host, to the listener); the
    ACK codes. The connection is closed at the end."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0)), 10)
    codes = []
    try:
        for message in messages:
            writer.write(encode_frame(message))
            await writer.drain()
            ack = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 10)
            codes.append(ack_code_of(ack.strip(b"\x0b\x1c\r").decode()))
    finally:
        writer.close()
        await writer.wait_closed()
    return codes
