"""The console's outbound API and pages: who may see and replay, and what is audited."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.outbound.service import OutboundService
from gateway.outbound.settings import DestinationSettings, OutboundSettings
from gateway.spool import Spool
from gateway.spool.outbound import OutboundItem, OutboundRow
from tests.unit.gateway.console_app import OPERATOR, VIEWER, bearer, running_app

ITEM = OutboundItem(destination="ehr", event_id="e1.result", causation_id="e1",
                    message_type="ORU^R01", control_id="CTRL1", patient_key="p1",
                    resource=b'{"resourceType":"Bundle","type":"collection","entry":[]}',
                    message=b"MSH|^~\\&|HL7GW||||20261203||ORU^R01|CTRL1|P|2.5.1\rPID|1||SECRET\r")


async def next_queued(spool: Spool, destination: str) -> OutboundRow | None:
    """The oldest row queued for ``destination``, as its sender would take it."""
    rows = await spool.queued_outbound(destination, 1)
    return rows[0] if rows else None



def audit_lines(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_without_an_outbound_section_the_api_says_what_to_configure(
        tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, _, _):
        answer = await client.get("/api/v1/outbound", headers=bearer(VIEWER))
    assert answer.status_code == 404
    assert "outbound:" in answer.json()["error"]


async def test_roles_bodies_and_replay_of_outbound_messages(tmp_path: Path) -> None:
    async with running_app(tmp_path) as (client, runtime, _):
        settings = OutboundSettings(destinations=[DestinationSettings(
            name="ehr", host="127.0.0.1", port=9)])
        runtime.outbound = OutboundService(  # type: ignore[attr-defined]
            settings, runtime.settings.kafka, runtime.spool, runtime.metrics)
        await runtime.spool.queue_outbound([ITEM])
        row = await next_queued(runtime.spool, "ehr")
        assert row is not None

        listed = (await client.get("/api/v1/outbound", headers=bearer(VIEWER))).json()
        assert [(r["id"], r["status"], r["control_id"]) for r in listed["outbound"]] == [
            (row.id, "queued", "CTRL1")]
        assert listed["destinations"]["ehr"]["queued"] == 1
        assert "SECRET" not in json.dumps(listed)  # metadata only

        # A queued message is not replayed; a viewer never sees a body.
        refused = await client.post(f"/api/v1/outbound/{row.id}/replay",
                                    headers=bearer(OPERATOR))
        assert refused.status_code == 409
        assert (await client.get(f"/api/v1/outbound/{row.id}/body",
                                 headers=bearer(VIEWER))).status_code == 403
        body = (await client.get(f"/api/v1/outbound/{row.id}/body",
                                 headers=bearer(OPERATOR))).json()
        assert "PID|1||SECRET" in body["message"] and body["ack"] is None

        await runtime.spool.settle_outbound(row.id, status="failed", attempts=1,
                                            ack_code="AR", ack=b"MSA|AR|CTRL1",
                                            error="refused with AR")
        # The stored result renders to nothing (an empty Bundle): replay says why.
        failed = await client.post(f"/api/v1/outbound/{row.id}/replay",
                                   headers=bearer(OPERATOR))
        assert failed.status_code == 409 and "cannot be rendered" in failed.json()["error"]
        assert (await client.post(f"/api/v1/outbound/{row.id}/replay",
                                  headers=bearer(VIEWER))).status_code == 403

        page = await client.get("/console/outbound", headers=bearer(VIEWER))
        assert page.status_code == 200 and "CTRL1" in page.text and "SECRET" not in page.text
        one = await client.get(f"/console/outbound/{row.id}", headers=bearer(VIEWER))
        assert one.status_code == 200 and "refused with AR" in one.text
    actions = [(e["action"], e["user"]) for e in audit_lines(tmp_path)]
    assert ("outbound_body", "olga") in actions
    assert ("outbound_replay", "olga") in actions  # the refused replay is recorded too
    assert not any(user == "vic" for action, user in actions if action.startswith("outbound"))
