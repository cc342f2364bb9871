"""Bulk actions against a real gateway: MLLP in, SQLite spool, Kafka out, uvicorn HTTP.

Preview changes nothing and records nothing; a confirmed replay republishes every selected
message under a new event id; exports are files of valid Bundles or raw HL7; the raw
download and every confirmed action are audit lines without patient data; viewers get 403
everywhere; the browser form needs its CSRF token and a confirm token used only once.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import GatewaySettings
from gateway.service import GatewayService
from mappers.validation import validate_bundle
from tests.integration.conftest import bounded, read_records
from tests.integration.test_console_api import (
    OPERATOR,
    VIEWER,
    accepted,
    audit_lines,
    bearer,
    console_settings,
    wait_for,
)

pytestmark = pytest.mark.integration

BULK = "/api/v1/messages/bulk"


async def published_ids(client: httpx.AsyncClient, count: int) -> list[int]:
    """Row ids of the ``count`` messages, once every one is published (oldest first)."""
    rows = (await client.get("/api/v1/messages", headers=bearer(VIEWER))).json()["messages"]
    assert len(rows) == count
    ids = sorted(r["id"] for r in rows)
    for row_id in ids:
        await wait_for(client, row_id, status="published")
    return ids


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@bounded(180)
async def test_bulk_preview_replay_export_and_raw(gateway_settings: GatewaySettings,
                                                  tmp_path: Path, kafka_bootstrap: str,
                                                  kafka_topic: str) -> None:
    settings = gateway_settings.model_copy(update={"console": console_settings(tmp_path)})
    audit = settings.console.audit_path
    async with GatewayService(settings) as gateway:
        await accepted(gateway, "BLK-1", "BLK-2", "BLK-3")
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            ids = await published_ids(client, 3)

            # Viewers may do none of it; nothing is recorded for a refusal.
            for method, path, body in (
                    ("POST", BULK, {"action": "replay", "ids": ids}),
                    ("GET", f"/console/messages/{ids[0]}/raw", None),
                    ("GET", f"/api/v1/messages/{ids[0]}/diff", None),
                    ("GET", f"/console/messages/{ids[0]}/diff", None),
                    ("POST", "/console/messages/bulk", None)):
                denied = await client.request(method, path, json=body, headers=bearer(VIEWER))
                assert denied.status_code == 403, path
            assert not audit.exists()

            # A preview says what would happen and changes nothing, records nothing.
            preview = await client.post(BULK, json={"action": "replay", "ids": ids},
                                        headers=bearer(OPERATOR))
            assert preview.status_code == 200
            data = preview.json()
            assert data["confirmed"] is False and data["count"] == 3 and data["max"] == 10_000
            assert data["statuses"] == {"published": 3}
            assert data["senders"] == {"EPICADT|GOODHEALTH": 3}
            assert data["types"] == {"ADT^A01": 3}
            assert data["sample_control_ids"] == ["BLK-3", "BLK-2", "BLK-1"]
            assert (data["first_id"], data["last_id"]) == (ids[0], ids[-1])
            assert data["queued"] is None
            by_filter = (await client.post(BULK, headers=bearer(OPERATOR), json={
                "action": "replay", "filter": {"control_id": "BLK-2"}})).json()
            assert by_filter["count"] == 1 and by_filter["sample_control_ids"] == ["BLK-2"]
            for row_id in ids:
                assert (await wait_for(client, row_id, status="published"))["replays"] == 0
            assert not audit.exists()
            empty = await client.post(BULK, json={"action": "replay", "filter": {}},
                                      headers=bearer(OPERATOR))
            assert empty.status_code == 400 and "filter" in empty.json()["error"]

            # Confirmed: all three go out again; one audit line with the count and range.
            done = await client.post(BULK, headers=bearer(OPERATOR), json={
                "action": "replay", "ids": ids, "confirm": True})
            assert done.status_code == 200 and done.json()["queued"] == ids
            for row_id in ids:
                await wait_for(client, row_id, status="published", replays=1)
            (line,) = audit_lines(audit)
            assert line["action"] == "bulk_replay" and line["user"] == "olga"
            assert line["outcome"] == f"3 queued of 3 selected, ids {ids[0]}-{ids[-1]}"
            assert line["filter"] == {"selection": "ids"} and "targets" not in line

            # Export NDJSON: three valid Bundles, streamed as an attachment; audited.
            ndjson = await client.post(BULK, headers=bearer(OPERATOR), json={
                "action": "export-ndjson", "ids": ids, "confirm": True})
            assert ndjson.status_code == 200
            assert ndjson.headers["content-disposition"] == \
                'attachment; filename="messages-3.ndjson"'
            bundles = [json.loads(x) for x in ndjson.text.splitlines()]
            assert len(bundles) == 3
            for bundle in bundles:
                assert bundle["resourceType"] == "Bundle"
                validate_bundle(bundle)
            last = audit_lines(audit)[-1]
            assert last["action"] == "export"
            assert last["outcome"] == f"3 messages as ndjson, ids {ids[0]}-{ids[-1]}"

            # Export HL7: raw messages, segments in CR, one message per line, no MLLP.
            hl7 = await client.post(BULK, headers=bearer(OPERATOR), json={
                "action": "export-hl7", "filter": {"type": "ADT^A01"}, "confirm": True})
            assert hl7.headers["content-disposition"] == 'attachment; filename="messages-3.hl7"'
            messages = hl7.text.split("\n")
            assert messages[-1] == "" and len(messages) == 4
            assert [m.split("|")[9] for m in messages[:3]] == ["BLK-1", "BLK-2", "BLK-3"]
            assert all(m.startswith("MSH|") and m.endswith("\r") and "\x0b" not in m
                       for m in messages[:3])
            assert "\rPID|" in messages[0]
            assert audit_lines(audit)[-1]["filter"] == {"type": "ADT^A01",
                                                       "selection": "filter"}

            # The raw download: the message as a text file, audited as a body view.
            raw = await client.get(f"/console/messages/{ids[1]}/raw", headers=bearer(OPERATOR))
            assert raw.status_code == 200
            assert raw.headers["content-type"] == "text/plain; charset=utf-8"
            assert raw.headers["content-disposition"] == \
                f'attachment; filename="message-{ids[1]}.hl7"'
            assert raw.text.startswith("MSH|") and "|BLK-2|" in raw.text
            last = audit_lines(audit)[-1]
            assert (last["action"], last["targets"], last["outcome"]) == \
                ("view_body", [ids[1]], "raw download")
            assert "Everyman" not in audit.read_text()  # no patient data in the audit log

    records = await asyncio.wait_for(read_records(kafka_bootstrap, kafka_topic, 6), 30)
    event_ids = [dict(r.headers)["ce_id"].decode() for r in records]
    first = [e for e in event_ids if not e.endswith("-r1")]
    assert len(first) == 3
    assert sorted(e for e in event_ids if e.endswith("-r1")) == sorted(f"{e}-r1" for e in first)


@bounded(150)
async def test_bulk_form_preview_confirm_once(gateway_settings: GatewaySettings,
                                              tmp_path: Path) -> None:
    settings = gateway_settings.model_copy(update={"console": console_settings(tmp_path)})
    audit = settings.console.audit_path
    async with GatewayService(settings) as gateway:
        await accepted(gateway, "FRM-1", "FRM-2", "FRM-3")
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            ids = await published_ids(client, 3)
            login = await client.post("/console/login", data={"token": OPERATOR})
            assert login.status_code == 303
            csrf = csrf_of((await client.get("/console/messages")).text)

            # Without the session's CSRF token the form is refused.
            forged = await client.post("/console/messages/bulk", data={
                "action": "reprocess", "id": [str(i) for i in ids]})
            assert forged.status_code == 403

            form: dict[str, Any] = {"csrf": csrf, "action": "reprocess",
                                    "id": [str(ids[0]), str(ids[2])], "filter": "status=published"}
            page = await client.post("/console/messages/bulk", data=form)
            assert page.status_code == 200
            assert 'id="preview-count">2<' in page.text
            assert "FRM-3, FRM-1" in page.text and "FRM-2" not in page.text
            assert "first mapped here with the current profiles" in page.text
            assert "At most 10,000 messages per action" in page.text
            token = re.search(r'name="token" value="([^"]+)"', page.text)
            assert token is not None
            assert not audit.read_text().count("bulk_")  # a preview records nothing

            confirm = {"csrf": csrf, "token": token.group(1)}
            done = await client.post("/console/messages/bulk/confirm", data=confirm)
            assert done.status_code == 200
            assert 'id="queued-count">2<' in done.text
            again = await client.post("/console/messages/bulk/confirm", data=confirm)
            assert again.status_code == 409 and "preview again" in again.text
            for row_id in (ids[0], ids[2]):
                await wait_for(client, row_id, status="published", replays=1)
            assert (await wait_for(client, ids[1], status="published"))["replays"] == 0

            # "All matching" takes the list page's filter, not the ticked boxes.
            everything = await client.post("/console/messages/bulk", data={
                "csrf": csrf, "action": "export-hl7", "all_matching": "1",
                "filter": "control_id=FRM-2"})
            assert 'id="preview-count">1<' in everything.text
            # A search by patient name: the audit line names its kind, never the name.
            by_name = await client.post("/console/messages/bulk", data={
                "csrf": csrf, "action": "export-hl7", "all_matching": "1",
                "filter": "q=Everyman&kind=name"})
            assert 'id="preview-count">3<' in by_name.text
            token = re.search(r'name="token" value="([^"]+)"', by_name.text)
            assert token is not None
            exported = await client.post("/console/messages/bulk/confirm",
                                         data={"csrf": csrf, "token": token.group(1)})
            assert exported.text.count("\rPID|") == 3
            line = audit_lines(audit)[-1]
            assert line["action"] == "export"
            assert line["filter"] == {"search": "name", "selection": "all matching"}
            assert "Everyman" not in audit.read_text()
            nothing = await client.post("/console/messages/bulk", data={
                "csrf": csrf, "action": "replay"})
            assert nothing.status_code == 400 and "no messages selected" in nothing.text

    bulk = [e for e in audit_lines(audit) if e["action"].startswith("bulk_")]
    assert len(bulk) == 1 and bulk[0]["action"] == "bulk_reprocess"
    assert bulk[0]["outcome"] == f"2 queued of 2 selected, ids {ids[0]}-{ids[2]}"
