"""Sign-in with OpenID Connect against a real (test) provider, and sessions across restarts.

The provider (``tests/support/oidc_provider.py``) and the gateway each run a real uvicorn
on their own loopback port; httpx follows the redirects like a browser, keeping cookies.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import ConsoleSettings, ConsoleUser, GatewaySettings, HttpSettings
from gateway.mllp.settings import client_context
from gateway.oidc_settings import OidcSettings
from gateway.service import GatewayService
from tests.integration.conftest import bounded, free_port
from tests.integration.test_mllp_tls import make_pki, server_tls
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider

pytestmark = pytest.mark.integration

TOKEN = "signin-token-0123456789"
DOCTOR = {"sub": "u-7", "preferred_username": "dr.ada",
          "realm_access": {"roles": ["hl7-operators"]}}


def signin_settings(base: GatewaySettings, tmp_path: Path, port: int, issuer: str
                    ) -> GatewaySettings:
    oidc = OidcSettings(name="Hospital SSO", issuer=issuer, client_id=CLIENT_ID,
                        client_secret=CLIENT_SECRET,
                        redirect_url=f"http://127.0.0.1:{port}/console/oidc/callback",
                        roles_claim="realm_access.roles", operator_values=["hl7-operators"],
                        viewer_values=["staff"])
    console = ConsoleSettings(
        audit_path=tmp_path / "audit.jsonl", oidc=oidc,
        users=[ConsoleUser(name="olga", role="operator",
                           token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest())])
    return base.model_copy(update={"console": console, "http": HttpSettings(port=port)})


def audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def sign_in(client: httpx.AsyncClient) -> httpx.Response:
    """Click "Sign in with ..." and follow the provider's redirects back to the console."""
    login = await client.get("/console/login")
    assert 'id="oidc-login"' in login.text and "Sign in with Hospital SSO" in login.text
    start = await client.get("/console/login/oidc", params={"next": "/console/messages"})
    assert start.status_code == 303 and start.headers["location"].startswith(
        "http://127.0.0.1:")  # to the provider's authorize endpoint
    flow = start.headers["set-cookie"].lower()
    assert flow.startswith("hl7gw_oidc=") and "samesite=lax" in flow
    assert "path=/console/oidc" in flow and "httponly" in flow and "max-age=600" in flow
    return await client.get(start.headers["location"], follow_redirects=True)


@bounded(90)
async def test_code_flow_gives_a_session_with_the_mapped_role_across_a_restart(
        gateway_settings: GatewaySettings, tmp_path: Path) -> None:
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/console/oidc/callback"
    async with OidcProvider(redirect_url=redirect, claims=dict(DOCTOR)) as idp:
        settings = signin_settings(gateway_settings, tmp_path, port, idp.url)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            async with GatewayService(settings):
                landed = await sign_in(client)
                assert landed.status_code == 200, landed.text
                assert str(landed.url).startswith(f"{base}/console/oidc/callback?code=")
                assert 'id="signed-in"' in landed.text and "dr.ada" in landed.text
                assert 'content="0;url=/console/messages"' in landed.text
                cookie = landed.headers["set-cookie"]
                assert "hl7gw_console=" in cookie and "samesite=strict" in cookie.lower()
                assert "HttpOnly" in cookie
                # PKCE: the verifier went to the provider's token endpoint, nowhere else
                verifier = idp.token_requests[-1]["code_verifier"]
                assert verifier not in str(idp.authorize_requests)
                page = await client.get("/console/messages")
                assert page.status_code == 200 and "dr.ada" in page.text
                assert (await client.get("/console/audit")).status_code == 200  # operator
            # A new gateway process on the same files: the same cookie still works.
            async with GatewayService(settings):
                again = await client.get("/console/audit")
                assert again.status_code == 200 and "dr.ada" in again.text
                csrf = again.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
                out = await client.post("/console/logout", data={"csrf": csrf})
                assert out.status_code == 303
                client.cookies.set("hl7gw_console", cookie.split(";")[0].split("=", 1)[1])
                stale = await client.get("/console/messages")
                assert stale.status_code == 303  # logged out on the server
    lines = [(e["action"], e["user"], e["role"], e.get("method")) for e in audit(
        settings.console.audit_path) if e["action"] in ("login", "logout", "login_failed")]
    assert lines == [("login", "dr.ada", "operator", "oidc"),
                     ("logout", "dr.ada", "operator", "oidc")]


@bounded(90)
async def test_a_viewer_group_gives_a_viewer_and_no_group_is_refused(
        gateway_settings: GatewaySettings, tmp_path: Path) -> None:
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/console/oidc/callback"
    staff = {"sub": "u-8", "preferred_username": "nurse.bo",
             "realm_access": {"roles": ["staff"]}}
    async with OidcProvider(redirect_url=redirect, claims=staff) as idp:
        settings = signin_settings(gateway_settings, tmp_path, port, idp.url)
        async with GatewayService(settings), httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert (await sign_in(client)).status_code == 200
            assert (await client.get("/console/messages")).status_code == 200
            denied = await client.get("/console/audit")
            assert denied.status_code == 403 and "operator" in denied.text

            client.cookies.clear()
            idp.claims = {"sub": "u-9", "preferred_username": "visitor",
                          "realm_access": {"roles": ["visitors"]}}
            refused = await sign_in(client)
            assert refused.status_code == 403
            assert "none of your realm_access.roles gives a role" in refused.text
            assert "hl7gw_console=" not in refused.headers.get("set-cookie", "")
            assert (await client.get("/console")).status_code == 303  # to the login form

            # An answer that this browser did not start (no flow cookie) is refused.
            client.cookies.clear()
            forged = await client.get("/console/oidc/callback",
                                      params={"code": "x", "state": "y"})
            assert forged.status_code == 400 and "start again" in forged.text
    lines = [(e["action"], e["user"], e.get("method"), e.get("outcome"))
             for e in audit(settings.console.audit_path)]
    assert lines == [("login", "nurse.bo", "oidc", None),
                     ("login_failed", "visitor", "oidc", "no console role"),
                     ("login_failed", "", "oidc", "unknown sign-in")]


@bounded(60)
async def test_an_expired_id_token_is_refused_over_http(gateway_settings: GatewaySettings,
                                                        tmp_path: Path) -> None:
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/console/oidc/callback"
    async with OidcProvider(redirect_url=redirect, claims=dict(DOCTOR),
                            override={"exp": 1_000_000}) as idp:
        settings = signin_settings(gateway_settings, tmp_path, port, idp.url)
        async with GatewayService(settings), httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            refused = await sign_in(client)
            assert refused.status_code == 401 and "expired" in refused.text
            assert "hl7gw_console=" not in refused.headers.get("set-cookie", "")


@bounded(60)
async def test_token_sessions_survive_a_restart_but_not_the_user_being_removed(
        gateway_settings: GatewaySettings, tmp_path: Path) -> None:
    port = free_port()
    settings = signin_settings(gateway_settings, tmp_path, port, "https://idp.example")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        async with GatewayService(settings):
            login = await client.post("/console/login", data={"token": TOKEN})
            assert login.status_code == 303
        async with GatewayService(settings):
            assert (await client.get("/console/audit")).status_code == 200
        without_olga = settings.console.model_copy(update={"users": []})
        async with GatewayService(settings.model_copy(update={"console": without_olga})):
            assert (await client.get("/console/audit")).status_code == 303
    logins = [(e["action"], e.get("method")) for e in audit(settings.console.audit_path)]
    assert logins == [("login", "token")]


@bounded(90)
async def test_sign_in_over_https_with_the_providers_own_ca(gateway_settings: GatewaySettings,
                                                            tmp_path: Path) -> None:
    pki = await asyncio.to_thread(make_pki, tmp_path)
    port = free_port()
    redirect = f"https://localhost:{port}/console/oidc/callback"
    async with OidcProvider(redirect_url=redirect, claims=dict(DOCTOR), hostname="localhost",
                            tls=(pki.server_cert, pki.server_key)) as idp:
        assert idp.url.startswith("https://")
        plain = signin_settings(gateway_settings, tmp_path, port, idp.url)
        assert plain.console.oidc is not None
        oidc = plain.console.oidc.model_copy(update={"redirect_url": redirect,
                                                      "ca_file": pki.ca})
        settings = plain.model_copy(update={
            "console": plain.console.model_copy(update={"oidc": oidc}),
            "http": HttpSettings(port=port, tls=server_tls(pki))})
        trust = client_context(cafile=pki.ca)
        async with GatewayService(settings), httpx.AsyncClient(
                base_url=f"https://localhost:{port}", timeout=10, verify=trust) as client:
            start = await client.get("/console/login/oidc")
            assert start.status_code == 303 and "Secure" in start.headers["set-cookie"]
            landed = await client.get(start.headers["location"], follow_redirects=True)
            assert landed.status_code == 200, landed.text
            assert "Secure" in landed.headers["set-cookie"]
            assert (await client.get("/console/audit")).status_code == 200

        # Without ca_file the gateway does not trust the provider, and says so.
        untrusting = plain.console.oidc.model_copy(update={"redirect_url": redirect})
        settings = settings.model_copy(update={
            "console": plain.console.model_copy(update={"oidc": untrusting})})
        async with GatewayService(settings), httpx.AsyncClient(
                base_url=f"https://localhost:{port}", timeout=10, verify=trust) as client:
            refused = await client.get("/console/login/oidc")
            assert refused.status_code == 502 and "ca_file" in refused.text
