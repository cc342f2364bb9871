"""Finding messages in a real browser (Debian's Chromium, headless, Playwright) against a
real gateway: search by patient identifier and by name, pick two rows and post the bulk
form (the request's fields are checked; the bulk route itself is another page's), and the
Rejected page's sender filter taking the sender as the page shows it. Screenshots go to
``test-output/screenshots/search/``."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

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
from gateway.mllp.client import MllpClient
from gateway.service import GatewayService
from tests.browser.test_console import A01
from tests.support import with_control_id
from tests.support.browser import chromium_page, need_chromium

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots" / "search"
TOKEN = "search-operator-token-77"
OTHER = (A01.replace(b"4820017^^^GOODHEALTH", b"7700001^^^GOODHEALTH", 1)
         .replace(b"Everyman^Adam", b"Nakamura^Yuki", 1))
# refused (unknown event), from a facility with components as many labs send it
REFUSED = (A01.replace(b"ADT^A01", b"ADT^A99", 1)
           .replace(b"|EPICADT|GOODHEALTH|", b"|SUNLAB|RIVERSIDE^2.16.840.1.113883^ISO|", 1))


@pytest.fixture
async def gateway(tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
                  ) -> AsyncIterator[GatewayService]:
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="search", port=0)],
        http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic),
        console=ConsoleSettings(
            audit_path=tmp_path / "audit.jsonl",
            users=[ConsoleUser(name="olga", role="operator",
                               token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest())]))
    async with GatewayService(settings) as running:
        yield running


async def test_search_and_bulk_selection_in_chromium(gateway: GatewayService) -> None:
    need_chromium()
    from playwright.async_api import Route, expect

    async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
        for cid in ("SRC-1", "SRC-2", "SRC-3"):
            assert ack_code_of((await mllp.send(with_control_id(A01, cid))).decode()) == "CA"
        assert ack_code_of((await mllp.send(with_control_id(OTHER, "SRC-N"))).decode()) \
            == "CA"
        assert ack_code_of((await mllp.send(with_control_id(REFUSED, "SRC-BAD"))).decode()) \
            == "CR"
        assert ack_code_of((await mllp.send(with_control_id(
            A01.replace(b"ADT^A01", b"ADT^A99", 1), "SRC-BAD2"))).decode()) == "CR"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while await gateway.spool.search.behind():
        assert loop.time() < deadline, "the search index did not catch up"
        await asyncio.sleep(0.05)
    SHOTS.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{gateway.http_port}"

    async with chromium_page(SHOTS, 1280, 900) as (page, shot):
        await page.goto(f"{base}/console/login?next=/console/messages")
        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        await expect(page).to_have_url(f"{base}/console/messages")
        rows = page.locator("#messages tbody tr")
        await expect(rows).to_have_count(4)

        # by patient identifier: the three Everyman messages, newest first
        await page.select_option("#search-kind", "identifier")
        await page.fill("#search-q", "4820017")
        await page.click("#filter button[type=submit]")
        await expect(rows).to_have_count(3)
        await expect(rows.locator(".control-id")).to_have_text(["SRC-3", "SRC-2",
                                                                "SRC-1"])
        await expect(page.locator("#search-note")).to_contain_text("patient identifier")
        await expect(page.locator("#all-matching")).to_be_visible()
        await expect(page.locator(".bulk-bar")).to_contain_text("all 3 matching")
        await shot("01-by-identifier")

        # by name, a prefix of each of family and given name
        await page.select_option("#search-kind", "name")
        await page.fill("#search-q", "naka yu")
        await page.click("#filter button[type=submit]")
        await expect(rows).to_have_count(1)
        await expect(rows.first.locator(".control-id")).to_have_text("SRC-N")
        await shot("02-by-name")

        # back to the identifier search; pick two rows and post the bulk form
        await page.select_option("#search-kind", "identifier")
        await page.fill("#search-q", "4820017")
        await page.click("#filter button[type=submit]")
        await expect(rows).to_have_count(3)
        posted: list[dict[str, Any]] = []

        async def capture(route: Route) -> None:
            request = route.request
            posted.append({"method": request.method,
                           "fields": parse_qs(request.post_data or "")})
            await route.fulfill(status=200, content_type="text/html",
                                body="<h1>bulk preview</h1>")

        await page.route("**/console/messages/bulk", capture)
        boxes = page.locator("#messages input[name=id]")
        await boxes.nth(0).check()
        await boxes.nth(2).check()
        await shot("03-two-selected")
        await page.click("button[name=action][value=replay]")
        await expect(page.locator("h1")).to_have_text("bulk preview")
        (sent,) = posted
        fields = sent["fields"]
        assert sent["method"] == "POST"
        ids = [int(i) for i in fields["id"]]
        assert len(ids) == 2 and ids[0] > ids[1]
        assert fields["action"] == ["replay"]
        assert fields["csrf"][0]
        assert parse_qs(fields["filter"][0]) == {"kind": ["identifier"],
                                                 "q": ["4820017"]}
        assert "all_matching" not in fields

        # Rejected: filter by the sender as shown, or by its application only
        await page.set_viewport_size({"width": 800, "height": 900})
        shown = "SUNLAB|RIVERSIDE^2.16.840.1.113883^ISO"
        for typed in (shown, "SUNLAB|RIVERSIDE", "SUNLAB"):
            await page.goto(f"{base}/console/rejected")
            await expect(page.locator("#rejected tbody tr")).to_have_count(2)
            await page.fill("input[name=sender]", typed)
            await page.click("#filter button[type=submit]")
            only = page.locator("#rejected tbody tr")
            await expect(only).to_have_count(1)
            await expect(only.first.locator("td.sender")).to_have_text(shown)
            await expect(page.locator("input[name=sender]")).to_have_value(typed)
        await shot("04-rejected-by-sender-800px")
        await page.goto(f"{base}/console/messages?kind=identifier&q=4820017")
        await expect(rows).to_have_count(3)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 800, f"the page is {width} px wide at an 800 px window"
        await shot("05-messages-800px")
