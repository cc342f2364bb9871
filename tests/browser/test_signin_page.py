"""Sign-in with OpenID Connect in a real browser (Debian's Chromium, headless).

A test provider (``tests/support/oidc_provider.py``) and a gateway run on their own
loopback ports. The browser opens the console, is sent to the login form, clicks
"Sign in with Hospital SSO", the provider approves its test user at once, and the browser
lands on the dashboard as that user with the mapped role; then it logs out. Screenshots
go to ``test-output/screenshots/signin/``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.settings import KafkaSettings
from gateway.config import (
    ConsoleSettings,
    ConsoleUser,
    GatewaySettings,
    HttpSettings,
    ListenerSettings,
    SpoolSettings,
)
from gateway.oidc_settings import OidcSettings
from gateway.service import GatewayService
from tests.integration.conftest import free_port
from tests.support.browser import chromium_page, need_chromium
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots" / "signin"
DOCTOR = {"sub": "u-7", "preferred_username": "dr.ada", "groups": ["hl7-operators"]}


@dataclass
class Running:
    base: str
    gateway: GatewayService
    idp: OidcProvider


@pytest.fixture
async def running(tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
                  ) -> AsyncIterator[Running]:
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/console/oidc/callback"
    # The provider is another site (localhost, not 127.0.0.1), as a hospital's would be,
    # and its page sends the browser back: a navigation started by another site, which
    # carries no SameSite=Strict cookie (the callback's own page continues to the console).
    async with OidcProvider(redirect_url=redirect, claims=dict(DOCTOR),
                            hostname="localhost", approval_page=True) as idp:
        oidc = OidcSettings(name="Hospital SSO", issuer=idp.url, client_id=CLIENT_ID,
                            client_secret=CLIENT_SECRET,
                            redirect_url=redirect, roles_claim="groups",
                            operator_values=["hl7-operators"], viewer_values=["staff"])
        settings = GatewaySettings(
            listeners=[ListenerSettings(name="browser", port=0)],
            http=HttpSettings(port=port),
            spool=SpoolSettings(path=tmp_path / "spool.db"),
            kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic),
            console=ConsoleSettings(
                audit_path=tmp_path / "audit.jsonl", oidc=oidc,
                users=[ConsoleUser(name="olga", role="operator",
                                   token_sha256=hashlib.sha256(b"some-token").hexdigest())]))
        async with GatewayService(settings) as gateway:
            yield Running(f"http://127.0.0.1:{port}", gateway, idp)


async def test_sign_in_with_the_provider_and_log_out(running: Running) -> None:
    need_chromium()
    from playwright.async_api import expect

    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    base = running.base
    async with chromium_page(SHOTS, 1200, 800) as (page, shot):
        await page.goto(f"{base}/console/messages")
        await expect(page).to_have_url(f"{base}/console/login?next=/console/messages")
        button = page.locator("#oidc-login")
        await expect(button).to_have_text("Sign in with Hospital SSO")
        await expect(page.locator("#token")).to_be_visible()  # the token form stays
        await shot("01-login-with-sso")

        await button.click()  # provider approves, callback page continues by itself
        await expect(page).to_have_url(f"{base}/console/messages", timeout=15_000)
        await expect(page.locator(".user")).to_contain_text("dr.ada")
        await expect(page.locator(".user .role")).to_have_text("operator")
        await shot("02-signed-in-messages")
        await page.click("nav >> text=Audit")  # operators only
        await expect(page.locator("#audit tbody")).to_contain_text("dr.ada")
        await shot("03-audit-shows-the-login")
        assert len(running.idp.token_requests) == 1

        await page.click("button:has-text('Log out')")
        await expect(page).to_have_url(f"{base}/console/login")
        await shot("04-logged-out")
        await page.goto(f"{base}/console")
        await expect(page).to_have_url(f"{base}/console/login?next=/console")

        # Someone the provider knows but whose groups give no console role.
        running.idp.claims = {"sub": "u-9", "preferred_username": "visitor",
                              "groups": ["visitors"]}
        await page.click("#oidc-login")
        await expect(page.locator("#login-problem")).to_contain_text(
            "none of your groups gives a role in this console")
        await expect(page.locator(".user")).to_have_count(0)
        await shot("05-refused-without-a-role")
    path = running.gateway.settings.console.audit_path
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["action"], e["user"], e.get("method")) for e in entries] == [
        ("login", "dr.ada", "oidc"), ("logout", "dr.ada", "oidc"),
        ("login_failed", "visitor", "oidc")]
