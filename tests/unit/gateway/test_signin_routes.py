"""The sign-in routes in the real app: public on purpose, absent without OIDC, clear errors."""

from __future__ import annotations

import html
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.console.auth import Sessions
from gateway.spool import Spool
from tests.unit.gateway.console_app import OPERATOR, FakeRuntime, settings_for
from tests.unit.gateway.test_console_routes import routes_without_a_role

OIDC = {"name": "Hospital SSO", "issuer": "http://127.0.0.1:9", "client_id": "hl7gw",
        "redirect_url": "http://127.0.0.1:8080/console/oidc/callback",
        "operator_values": ["ops"]}


def with_oidc(tmp_path: Path) -> GatewaySettings:
    base = settings_for(tmp_path)
    console = base.console.model_validate(base.console.model_dump() | {"oidc": OIDC})
    return base.model_copy(update={"console": console})


@pytest.fixture
async def client(tmp_path: Path) -> httpx.AsyncClient:
    settings = with_oidc(tmp_path)
    runtime = FakeRuntime(settings=settings, spool=Spool(settings.spool.path))
    app = create_app(runtime, console=runtime)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw")


def test_the_two_sign_in_routes_are_the_only_new_public_ones(tmp_path: Path) -> None:
    settings = with_oidc(tmp_path)
    runtime = FakeRuntime(settings=settings, spool=Spool(settings.spool.path))
    app = create_app(runtime, console=runtime)  # type: ignore[arg-type]
    assert sorted(routes_without_a_role(app)) == ["GET /console/login/oidc",
                                                  "GET /console/oidc/callback"]
    plain = settings_for(tmp_path)
    runtime = FakeRuntime(settings=plain, spool=Spool(plain.spool.path))
    app = create_app(runtime, console=runtime)  # type: ignore[arg-type]
    assert routes_without_a_role(app) == []  # without console.oidc they do not exist


async def test_the_login_page_offers_the_provider_next_to_the_token_form(
        client: httpx.AsyncClient) -> None:
    async with client:
        page = await client.get("/console/login", params={"next": "/console/messages"})
    assert page.status_code == 200
    assert 'href="/console/login/oidc?next=/console/messages"' in page.text
    assert "Sign in with Hospital SSO" in page.text and 'name="token"' in page.text


async def test_an_unreachable_provider_is_a_clear_page_not_a_500(
        client: httpx.AsyncClient) -> None:
    async with client:
        page = await client.get("/console/login/oidc")
    assert page.status_code == 502
    text = html.unescape(page.text)
    assert "cannot read the sign-in provider's discovery document" in text
    assert "console.oidc.issuer" in text
    flow = page.headers.get("set-cookie", "")
    assert "hl7gw_oidc=" not in flow or "Max-Age=0" in flow  # no login left pending


async def test_a_callback_nobody_started_is_refused_and_audited(
        client: httpx.AsyncClient, tmp_path: Path) -> None:
    async with client:
        page = await client.get("/console/oidc/callback", params={"code": "c", "state": "s"})
    assert page.status_code == 400 and "start again" in page.text
    assert "hl7gw_console=" not in page.headers.get("set-cookie", "")
    line = (tmp_path / "audit.jsonl").read_text()
    assert '"action":"login_failed"' in line and '"method":"oidc"' in line


async def test_an_unusable_session_file_refuses_the_login_with_the_reason(
        tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    base = settings_for(tmp_path)
    console = base.console.model_copy(update={"sessions_path": blocker / "sessions.db"})
    settings = base.model_copy(update={"console": console})
    runtime = FakeRuntime(settings=settings, spool=Spool(settings.spool.path))
    app = create_app(runtime, console=runtime)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                 base_url="http://gw") as client:
        login = await client.post("/console/login", data={"token": OPERATOR})
        assert login.status_code == 503
        assert "console.sessions_path" in html.unescape(login.text)
        assert "hl7gw_console=" not in login.headers.get("set-cookie", "")
        client.cookies.set("hl7gw_console", "whatever")
        assert (await client.get("/console")).status_code == 303  # to the login form
    audit = tmp_path / "audit.jsonl"
    assert not audit.exists() or '"action":"login"' not in audit.read_text()


async def test_a_login_the_audit_log_cannot_record_leaves_no_session(tmp_path: Path) -> None:
    base = settings_for(tmp_path)
    console = base.console.model_copy(update={"audit_path": tmp_path / "audit-dir",
                                              "sessions_path": tmp_path / "sessions.db"})
    (tmp_path / "audit-dir").mkdir()  # a folder where the log file should be: unwritable
    settings = base.model_copy(update={"console": console})
    runtime = FakeRuntime(settings=settings, spool=Spool(settings.spool.path))
    app = create_app(runtime, console=runtime)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                 base_url="http://gw") as client:
        login = await client.post("/console/login", data={"token": OPERATOR})
        assert login.status_code == 503
    assert Sessions(hours=8, path=tmp_path / "sessions.db").prune() == 0
    assert len(Sessions(hours=8, path=tmp_path / "sessions.db")) == 0
