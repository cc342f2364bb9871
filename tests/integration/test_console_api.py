"""The admin API against a real gateway: MLLP in, SQLite spool, Kafka out, uvicorn HTTP.

Who may see what (viewer: metadata; operator: bodies and replays), what lands in the audit
log, and that a replay really publishes the message again under ``<event id>-r1``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.ack import ack_code_of
from gateway.config import ConsoleSettings, ConsoleUser, GatewaySettings, ProfilesSettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.integration.conftest import bounded, read_records
from tests.support import PROFILES, SAMPLES, with_control_id

pytestmark = pytest.mark.integration

A01 = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
OPERATOR, VIEWER = "op-token-0123456789", "viewer-token-0123456789"


def console_settings(tmp_path: Path, users: bool = True, enabled: bool = True
                     ) -> ConsoleSettings:
    def user(name: str, role: str, token: str) -> ConsoleUser:
        return ConsoleUser(name=name, role=role,  # type: ignore[arg-type]
                           token_sha256=hashlib.sha256(token.encode()).hexdigest())
    return ConsoleSettings(enabled=enabled, audit_path=tmp_path / "audit" / "audit.jsonl",
                           users=[user("olga", "operator", OPERATOR),
                                  user("vic", "viewer", VIEWER)] if users else [])


async def accepted(gateway: GatewayService, *control_ids: str) -> None:
    """Send the ADT^A01 once per control id over MLLP; each must be accepted (CA)."""
    async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
        for cid in control_ids:
            assert ack_code_of((await mllp.send(with_control_id(A01, cid))).decode()) == "CA"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_for(client: httpx.AsyncClient, row_id: int, **expected: Any) -> dict[str, Any]:
    """Poll a message's metadata until the fields have the expected values."""
    for _ in range(300):
        info: dict[str, Any] = (await client.get(f"/api/v1/messages/{row_id}",
                                                 headers=bearer(VIEWER))).json()
        if all(info.get(k) == v for k, v in expected.items()):
            return info
        await asyncio.sleep(0.1)
    raise AssertionError(f"message {row_id} never reached {expected}: {info}")


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@bounded(120)
async def test_roles_audit_and_replay(gateway_settings: GatewaySettings, tmp_path: Path,
                                      kafka_bootstrap: str, kafka_topic: str) -> None:
    settings = gateway_settings.model_copy(update={
        "console": console_settings(tmp_path),
        "profiles": ProfilesSettings(dir=PROFILES, watch_interval_s=0)})
    audit = settings.console.audit_path
    async with GatewayService(settings) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
            for cid in ("CON-1", "CON-2"):
                assert ack_code_of((await mllp.send(with_control_id(A01, cid))).decode()) == "CA"
            refused = A01.replace(b"ADT^A01", b"ADT^A99", 1)
            assert ack_code_of((await mllp.send(with_control_id(refused, "BAD-1"))).decode()
                               ) == "CR"
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            # Nobody gets in without a token, and a wrong token is told so.
            none = await client.get("/api/v1/messages")
            assert none.status_code == 401
            assert "Authorization: Bearer" in none.json()["error"]
            assert none.headers["www-authenticate"] == "Bearer"
            wrong = await client.get("/api/v1/messages", headers=bearer("guess"))
            assert wrong.status_code == 401 and "unknown" in wrong.json()["error"]

            # A viewer sees metadata, filtered, newest first ...
            listing = await client.get("/api/v1/messages", headers=bearer(VIEWER))
            assert listing.status_code == 200
            rows = listing.json()["messages"]
            assert [r["control_id"] for r in rows] == ["CON-2", "CON-1"]
            assert "raw" not in rows[0]
            one = await client.get("/api/v1/messages", params={"control_id": "CON-1"},
                                   headers=bearer(VIEWER))
            (con1,) = one.json()["messages"]
            row_id = con1["id"]
            info = await wait_for(client, row_id, status="published")
            assert info["kafka_topic"] == kafka_topic and info["replays"] == 0
            rejected = (await client.get("/api/v1/rejected", headers=bearer(VIEWER))).json()
            (bad,) = rejected["rejected"]
            assert bad["control_id"] == "BAD-1" and bad["ack_code"] == "AR"

            # ... but no bodies and no replays, and nothing of that is audited.
            for path in (f"/api/v1/messages/{row_id}/body", f"/api/v1/rejected/{bad['id']}/body"):
                denied = await client.get(path, headers=bearer(VIEWER))
                assert denied.status_code == 403
                assert "operator" in denied.json()["error"]
            denied = await client.post(f"/api/v1/messages/{row_id}/replay",
                                       headers=bearer(VIEWER))
            assert denied.status_code == 403
            assert not audit.exists()

            # An operator sees the body: raw text, ACK and the Bundle; the view is audited.
            body = await client.get(f"/api/v1/messages/{row_id}/body", headers=bearer(OPERATOR))
            assert body.status_code == 200
            data = body.json()
            assert "|CON-1|" in data["raw"] and data["raw"].startswith("MSH|")
            assert "MSA|CA|CON-1" in data["ack"]
            assert data["mapping"]["bundle"]["resourceType"] == "Bundle"
            assert data["mapping"]["error"] is None
            (entry,) = audit_lines(audit)
            assert entry["user"] == "olga" and entry["role"] == "operator"
            assert entry["action"] == "view_body" and entry["targets"] == [row_id]
            assert entry["peer"].startswith("127.0.0.1:") and entry["time"].endswith("Z")
            assert "Everyman" not in audit.read_text()  # names never reach the audit log

            # Replay: back to pending, published again with replays=1, audited.
            replay = await client.post(f"/api/v1/messages/{row_id}/replay",
                                       headers=bearer(OPERATOR))
            assert replay.status_code == 202 and replay.json() == {"replayed": [row_id]}
            again = await wait_for(client, row_id, status="published", replays=1)
            assert again["kafka_offset"] != info["kafka_offset"] or \
                again["kafka_partition"] != info["kafka_partition"]
            last = audit_lines(audit)[-1]
            assert last["action"] == "replay" and last["targets"] == [row_id]
            assert last["filter"] == {"ids": [row_id]}
            # the line hl7gw replay writes too (test_replay_cli.py), here with the token's user
            assert set(last) == {"time", "user", "role", "action", "peer", "targets",
                                 "filter"}
            assert last["user"] == "olga" and last["role"] == "operator"

            # A filter replay refuses to mean "everything" by accident.
            empty = await client.post("/api/v1/replay", json={}, headers=bearer(OPERATOR))
            assert empty.status_code == 400 and "all" in empty.json()["error"]

            # Reprocess a refused message: still refused (the listener has not changed),
            # kept as a new rejected row; viewers may not; audited.
            path = f"/api/v1/rejected/{bad['id']}/reprocess"
            assert (await client.post(path, headers=bearer(VIEWER))).status_code == 403
            redo = await client.post(path, headers=bearer(OPERATOR))
            assert redo.status_code == 200
            assert redo.json()["ack_code"] == "CR"
            assert redo.json()["result"]["status"] == "rejected"
            assert redo.json()["result"]["row_id"] != bad["id"]
            last = audit_lines(audit)[-1]
            assert last["action"] == "reprocess" and last["targets"] == [bad["id"]]

            # Profiles: the live set, and the playground maps with them.
            profiles = (await client.get("/api/v1/profiles", headers=bearer(VIEWER))).json()
            assert [p["name"] for p in profiles["profiles"]] == ["sunlab", "wardvitals"]
            assert profiles["profiles"][0]["match"]["application"] == "SUNLAB"
            assert profiles["last_error"] is None
            pasted = A01.decode().replace("|EPICADT|GOODHEALTH|", "|SUNLAB|RIVERSIDE|", 1)
            mapped = (await client.post("/api/v1/playground", headers=bearer(VIEWER),
                                        json={"text": pasted, "profile": "auto"})).json()
            assert mapped["profile"] == "sunlab" and mapped["timezone"] == "America/Chicago"
            assert mapped["bundle"]["resourceType"] == "Bundle"
            dashboard = (await client.get("/api/v1/dashboard", headers=bearer(VIEWER))).json()
            assert dashboard["counts"]["rejected"] == 2  # the refusal and its reprocess
            history = dashboard["history"]  # per minute from the spool, not the sampler
            assert len(history["received"]) == 60 and sum(history["received"]) >= 2
            assert sum(history["rejected"]) == 2

    # Kafka: the two messages, then CON-1 again under its event id with -r1.
    records = await asyncio.wait_for(read_records(kafka_bootstrap, kafka_topic, 3), 30)
    ids = [dict(r.headers)["ce_id"].decode() for r in records]
    replayed = [i for i in ids if i.endswith("-r1")]
    assert len(replayed) == 1
    assert replayed[0].removesuffix("-r1") in ids


@bounded(60)
async def test_console_disabled_has_no_routes(gateway_settings: GatewaySettings,
                                             tmp_path: Path) -> None:
    settings = gateway_settings.model_copy(
        update={"console": console_settings(tmp_path, enabled=False)})
    async with GatewayService(settings) as gateway:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as c:
            for path in ("/console", "/console/login", "/api/v1/messages"):
                assert (await c.get(path, headers=bearer(OPERATOR))).status_code == 404
            assert (await c.get("/healthz")).status_code == 200


@bounded(60)
async def test_without_users_the_console_says_how_to_add_them(
        gateway_settings: GatewaySettings, tmp_path: Path) -> None:
    settings = gateway_settings.model_copy(
        update={"console": console_settings(tmp_path, users=False)})
    async with GatewayService(settings) as gateway:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as c:
            api = await c.get("/api/v1/messages", headers=bearer(OPERATOR))
            assert api.status_code == 401
            assert "hl7gw console token" in api.json()["error"]
            login = await c.post("/console/login", data={"token": OPERATOR})
            assert login.status_code == 403
            assert "console.users" in login.text
            assert "hl7gw_console" not in login.headers.get("set-cookie", "")


@bounded(60)
async def test_browser_sessions_cookie_csrf_and_logout(gateway_settings: GatewaySettings,
                                                      tmp_path: Path) -> None:
    settings = gateway_settings.model_copy(update={"console": console_settings(tmp_path)})
    async with GatewayService(settings) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
            assert ack_code_of((await mllp.send(with_control_id(A01, "S-1"))).decode()) == "CA"
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            page = await client.get("/console/messages")
            assert page.status_code == 303
            assert page.headers["location"] == "/console/login?next=/console/messages"

            # A login from another site is refused; a wrong token is audited as failed.
            evil = await client.post("/console/login", data={"token": OPERATOR},
                                     headers={"Origin": "https://evil.example"})
            assert evil.status_code == 403 and "hl7gw_console" not in evil.headers.get(
                "set-cookie", "")
            bad = await client.post("/console/login", data={"token": "nope"})
            assert bad.status_code == 401

            login = await client.post("/console/login",
                                      data={"token": OPERATOR, "next": "//evil.example/"})
            assert login.status_code == 303 and login.headers["location"] == "/console"
            cookie = login.headers["set-cookie"]
            assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
            assert "Secure" not in cookie  # plain http here; https adds it
            listing = await client.get("/console/messages")
            assert listing.status_code == 200 and "S-1" in listing.text
            assert listing.headers["cache-control"] == "no-store"
            assert "script-src 'self'" in listing.headers["content-security-policy"]

            # Changes need the session's CSRF token: without it, nothing is replayed.
            row_id = (await client.get("/api/v1/messages")).json()["messages"][0]["id"]
            await wait_for(client, row_id, status="published")
            forged = await client.post(f"/console/messages/{row_id}/replay", data={})
            assert forged.status_code == 403
            forged_api = await client.post(f"/api/v1/messages/{row_id}/replay")
            assert forged_api.status_code == 403
            info = (await client.get(f"/api/v1/messages/{row_id}")).json()
            assert info["replays"] == 0

            # Logout ends the session on the server, whatever the browser keeps.
            csrf = listing.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            out = await client.post("/console/logout", data={"csrf": csrf})
            assert out.status_code == 303
            client.cookies.set("hl7gw_console", cookie.split(";")[0].split("=", 1)[1])
            assert (await client.get("/console/messages")).status_code == 303
    actions = [e["action"] for e in audit_lines(settings.console.audit_path)]
    assert actions == ["login_failed", "login", "logout"]


@bounded(60)
async def test_filters_page_and_a_bad_filter_is_explained(gateway_settings: GatewaySettings,
                                                          tmp_path: Path) -> None:
    settings = gateway_settings.model_copy(update={"console": console_settings(tmp_path)})
    async with GatewayService(settings) as gateway:
        await accepted(gateway, *("F-1", "F-2", "F-3"))
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10,
                                     headers=bearer(VIEWER)) as client:
            first = (await client.get("/api/v1/messages", params={"limit": 2})).json()
            assert [m["control_id"] for m in first["messages"]] == ["F-3", "F-2"]
            rest = (await client.get("/api/v1/messages", params={
                "limit": 2, "before": first["next_before"]})).json()
            assert [m["control_id"] for m in rest["messages"]] == ["F-1"]
            assert rest["next_before"] is None
            bad = await client.get("/api/v1/messages", params={"status": "bogus"})
            assert bad.status_code == 400 and "unknown status 'bogus'" in bad.json()["error"]

            await client.post("/console/login", data={"token": VIEWER})
            page = await client.get("/console/messages", params={"limit": 2},
                                    headers={"Authorization": ""})
            assert page.status_code == 200 and "F-3" in page.text and "F-1" not in page.text
            assert "before=" in page.text  # the link to older rows
            shown = await client.get("/console/messages", params={"status": "bogus"},
                                     headers={"Authorization": ""})
            assert shown.status_code == 200 and "unknown status" in shown.text


@bounded(120)
async def test_dashboard_shows_the_bridge_groups_kafka_lag(gateway_settings: GatewaySettings,
                                                           tmp_path: Path) -> None:
    # The settings name a bridge group, but no bridge runs: each published event is lag.
    console = console_settings(tmp_path).model_copy(update={"sample_interval_s": 0.2})
    settings = gateway_settings.model_copy(update={"console": console})
    async with GatewayService(settings) as gateway:
        await accepted(gateway, *("L-1", "L-2", "L-3"))
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10,
                                     headers=bearer(VIEWER)) as client:
            seen: list[object] = []  # the lag as sampled: None while Kafka is asked first
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while loop.time() < deadline and (not seen or seen[-1] != 3):
                points = (await client.get("/api/v1/dashboard")).json()["series"]["points"]
                if points:
                    seen.append(points[-1]["consumer_lag"])
                await asyncio.sleep(0.1)
            assert seen and seen[-1] == 3, seen[-20:]
            await client.post("/console/login", data={"token": VIEWER})
            page = await client.get("/console", headers={"Authorization": ""})
            assert f"group {settings.bridge.group_id}" in page.text  # type: ignore[union-attr]
            assert 'id="consumer-lag">3<' in page.text


@bounded(90)
async def test_out_of_range_and_mistyped_parameters_are_400_over_http(
        gateway_settings: GatewaySettings, tmp_path: Path) -> None:
    # Issue 16 items 9 and 10, as the campaign found them: a real gateway over HTTP.
    settings = gateway_settings.model_copy(update={"console": console_settings(tmp_path)})
    huge = "99999999999999999999"
    async with GatewayService(settings) as gateway:
        await accepted(gateway, "B-1", "B-2")
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10,
                                     headers=bearer(OPERATOR)) as client:
            first = (await client.get("/api/v1/messages")).json()["messages"][-1]["id"]
            await wait_for(client, first, status="published")
            for path in (f"/api/v1/messages?before={huge}", f"/api/v1/rejected?before={huge}",
                         f"/api/v1/messages/{huge}", f"/console/messages/{huge}"):
                answer = await client.get(path)
                assert answer.status_code == 400, (path, answer.text)
                assert "9223372036854775807" in answer.text
            for path in (f"/console/messages?before={huge}", f"/console/rejected?before={huge}"):
                page = await client.get(path)
                assert page.status_code == 200 and "before must be a whole number" in page.text
            for body in ({"ids": [int(huge)]}, {"since": True}, {"ids": [True]},
                         {"until": False, "all": True}):
                answer = await client.post("/api/v1/replay", json=body)
                assert answer.status_code == 400, (body, answer.text)
                assert answer.json()["error"]
            info = (await client.get(f"/api/v1/messages/{first}")).json()
            assert info["replays"] == 0 and info["status"] == "published"
            assert not settings.console.audit_path.exists()  # nothing replayed or recorded
