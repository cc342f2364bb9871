"""HTTPS on the gateway's HTTP port (``http.tls``): probes, the console, Secure cookies, mTLS."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from pathlib import Path

import httpx
import pytest

from gateway.config import ConsoleSettings, ConsoleUser, GatewaySettings, HttpSettings
from gateway.mllp.settings import client_context
from gateway.service import GatewayService
from tests.integration.conftest import bounded
from tests.integration.test_mllp_tls import Pki, make_pki, server_tls

pytestmark = pytest.mark.integration

TOKEN = "tls-operator-token-0123456789"


def tls_settings(base: GatewaySettings, tmp_path: Path, pki: Pki, *, mutual: bool = False
                 ) -> GatewaySettings:
    console = ConsoleSettings(
        audit_path=tmp_path / "audit.jsonl",
        users=[ConsoleUser(name="olga", role="operator",
                           token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest())])
    return base.model_copy(update={
        "console": console, "http": HttpSettings(port=0, tls=server_tls(pki, mutual=mutual))})


@bounded(60)
async def test_https_serves_probes_and_the_console_with_secure_cookies(
        gateway_settings: GatewaySettings, tmp_path: Path) -> None:
    pki = await asyncio.to_thread(make_pki, tmp_path)
    async with GatewayService(tls_settings(gateway_settings, tmp_path, pki)) as gateway:
        base = f"https://localhost:{gateway.http_port}"
        trust = client_context(cafile=pki.ca)
        async with httpx.AsyncClient(base_url=base, verify=trust, timeout=10) as client:
            health = await client.get("/healthz")
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            assert (await client.get("/readyz")).status_code == 200
            login = await client.post("/console/login", data={"token": TOKEN})
            assert login.status_code == 303
            cookie = login.headers["set-cookie"]
            assert "hl7gw_console=" in cookie and "Secure" in cookie
            page = await client.get("/console")
            assert page.status_code == 200 and "olga" in page.text
        # Plain HTTP on the HTTPS port gets no page; a client that does not trust the CA
        # fails the handshake.
        with pytest.raises(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=5) as plain:
                await plain.get(f"http://localhost:{gateway.http_port}/healthz")
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(timeout=5) as untrusting:
                await untrusting.get(f"{base}/healthz")


@bounded(60)
async def test_mutual_tls_on_the_http_port_needs_a_client_certificate(
        gateway_settings: GatewaySettings, tmp_path: Path) -> None:
    pki = await asyncio.to_thread(make_pki, tmp_path)
    settings = tls_settings(gateway_settings, tmp_path, pki, mutual=True)
    async with GatewayService(settings) as gateway:
        url = f"https://localhost:{gateway.http_port}/healthz"
        with_cert = client_context(cafile=pki.ca, certfile=pki.client_cert,
                                   keyfile=pki.client_key)
        async with httpx.AsyncClient(verify=with_cert, timeout=10) as client:
            assert (await client.get(url)).status_code == 200
        other = client_context(cafile=pki.ca, certfile=pki.other_client_cert,
                               keyfile=pki.other_client_key)
        for context in (client_context(cafile=pki.ca), other):
            with pytest.raises((httpx.HTTPError, ssl.SSLError)):
                async with httpx.AsyncClient(verify=context, timeout=5) as client:
                    await client.get(url)
