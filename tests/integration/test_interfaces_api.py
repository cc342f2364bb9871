"""``GET /api/v1/interfaces`` against a real gateway: MLLP in, SQLite spool, Kafka, uvicorn.

Who may read it (any viewer; no token or an unknown one is a 401), that it shows the
connection open now with the messages sent on it, the senders' counts from the spool,
and that those counts, and the dashboard's per-minute history, survive a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
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
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.integration.conftest import bounded
from tests.support import SAMPLES, with_control_id, with_msh

pytestmark = pytest.mark.integration

OPERATOR, VIEWER = "if-op-token-0123456789", "if-viewer-token-0123456789"
A01 = with_msh(split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0],
               f3="SUNLAB", f4="RIVERSIDE^2.16.840.1.113883.19.5^ISO")


def settings_for(tmp_path: Path, kafka_bootstrap: str, kafka_topic: str) -> GatewaySettings:
    def user(name: str, role: str, token: str) -> ConsoleUser:
        return ConsoleUser(name=name, role=role,
                           token_sha256=hashlib.sha256(token.encode()).hexdigest())
    return GatewaySettings(
        listeners=[ListenerSettings(name="lab", port=0, senders=[
            SenderSettings(application="SUNLAB", facility="RIVERSIDE")])],
        http=HttpSettings(port=0), spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic),
        console=ConsoleSettings(audit_path=tmp_path / "audit.jsonl",
                                users=[user("olga", "operator", OPERATOR),
                                       user("vic", "viewer", VIEWER)]))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def interfaces(client: httpx.AsyncClient, token: str = VIEWER) -> dict[str, Any]:
    response = await client.get("/api/v1/interfaces", headers=bearer(token))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


@bounded(120)
async def test_interfaces_roles_live_connections_and_counts_across_a_restart(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str) -> None:
    settings = settings_for(tmp_path, kafka_bootstrap, kafka_topic)
    async with GatewayService(settings) as gateway:
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            assert (await client.get("/api/v1/interfaces")).status_code == 401
            unknown = await client.get("/api/v1/interfaces", headers=bearer("nope"))
            assert unknown.status_code == 401 and "token" in unknown.json()["error"]
            async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
                for cid in ("IF-1", "IF-2", "IF-3"):
                    ack = await mllp.send(with_control_id(A01, cid))
                    assert ack_code_of(ack.decode()) == "CA"
                data = await interfaces(client)
                [lab] = data["listeners"]
                assert (lab["name"], lab["running"], lab["tls"]) == ("lab", True, False)
                assert lab["port"] == gateway.listeners[0].port
                [conn] = lab["connections"]
                assert conn["messages"] == 3 and conn["since"] <= conn["last_message_at"]
                [sun] = lab["senders"]
                assert (sun["application"], sun["facility"]) == ("SUNLAB", "RIVERSIDE")
                assert sun["sender"] == "SUNLAB|RIVERSIDE^2.16.840.1.113883.19.5^ISO"
                assert sun["state"] == "connected" and sun["last_peer"] == conn["peer"]
                assert sun["counts_1h"] == sun["counts_24h"] == {"accepted": 3}
                assert sun["types_24h"] == {"ADT^A01": 3}
                assert sun["metric_label"] == "SUNLAB|RIVERSIDE" and sun["configured"]
                assert sun["silent"] is False  # three in a row, just now
                assert (await interfaces(client, OPERATOR))["listeners"][0]["senders"]
            deadline = time.monotonic() + 15
            while gateway.listeners[0].open_connections():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            # counts may come from the cache; the state is read live
            [sun] = (await interfaces(client))["listeners"][0]["senders"]
            assert sun["state"] == "not connected"
    # a read of metadata, like the dashboard: nothing for the audit log
    audit = settings.console.audit_path
    assert not audit.exists() or "interfaces" not in audit.read_text()

    async with GatewayService(settings) as gateway:  # the same spool, after a restart
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            [lab] = (await interfaces(client))["listeners"]
            assert lab["connections"] == []
            [sun] = lab["senders"]
            assert sun["counts_24h"] == {"accepted": 3} and sun["state"] == "not connected"
            page = await client.get("/console", headers=bearer(VIEWER))
            assert page.status_code == 200
            history = page.text.split('id="history"', 1)[1].split("</section>", 1)[0]
            assert "<polyline" in history and "no traffic in the last hour" not in history

