"""The dead-letter API against a real gateway and a real Kafka broker.

Two records are put on the bridge's DLQ topic the way the bridge writes them
(``connectors.bridge.dlq.dead_letter_headers``); a viewer lists them with their error
headers but may not see a body or redrive; an operator sees a body (audited) and
redrives one, which lands on the bridge's topic with its key, value and CloudEvents
headers and without the ``dlq_*`` ones; the audit line names positions, never content.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from connectors.bridge.dlq import dead_letter_headers
from connectors.errors import DeliveryError
from gateway.alerts.dead_letters import parse_positions
from gateway.config import GatewaySettings
from gateway.service import GatewayService
from tests.integration.conftest import bounded, read_records
from tests.integration.test_console_api import OPERATOR, VIEWER, bearer, console_settings

pytestmark = pytest.mark.integration

PHI = b'{"resourceType":"Bundle","entry":[{"resource":{"name":[{"family":"Doe"}]}}]}'


async def put_dead_letters(bootstrap: str, dlq: str, main: str) -> None:
    """Two dead letters, as the bridge writes them after giving up."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for n, status in ((1, 503), (2, 400)):
            original = [("ce_id", f"evt-{n}".encode()), ("ce_type", b"org.hl7.fhir.ADT_A01"),
                        ("ce_specversion", b"1.0"), ("content-type", b"application/fhir+json")]
            headers = dead_letter_headers(
                original, topic=main, partition=0, offset=n, attempts=5, status=status,
                error=DeliveryError(f"target answered HTTP {status}"),
                target="https://fn.example.org/events?code=secret")
            await producer.send_and_wait(dlq, PHI, key=f"pk-{n}".encode(), headers=headers,
                                         partition=0)
    finally:
        await producer.stop()


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@bounded(120)
async def test_list_roles_body_redrive_and_audit(gateway_settings: GatewaySettings,
                                                 tmp_path: Path, kafka_bootstrap: str,
                                                 kafka_topic: str) -> None:
    settings = gateway_settings.model_copy(update={"console": console_settings(tmp_path)})
    assert settings.bridge is not None and settings.bridge.dlq_topic == f"{kafka_topic}.dlq"
    dlq = settings.bridge.dlq_topic
    audit = settings.console.audit_path
    await put_dead_letters(kafka_bootstrap, dlq, kafka_topic)
    async with GatewayService(settings) as gateway:
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            assert (await client.get("/api/v1/dead-letters")).status_code == 401
            listing = await client.get("/api/v1/dead-letters", headers=bearer(VIEWER))
            assert listing.status_code == 200, listing.text
            data = listing.json()
            assert data["topic"] == dlq and data["main_topic"] == kafka_topic
            assert [d["ce_id"] for d in data["dead_letters"]] == ["evt-2", "evt-1"]
            newest = data["dead_letters"][0]
            assert newest["partition"] == 0 and newest["offset"] == 1
            assert newest["errors"]["http_status"] == "400"
            assert newest["errors"]["attempts"] == "5"
            assert newest["errors"]["error_class"] == "DeliveryError"
            assert newest["errors"]["target"] == "https://fn.example.org/events"
            assert newest["errors"]["topic"] == kafka_topic
            assert newest["ce_type"] == "org.hl7.fhir.ADT_A01"
            assert newest["patient_key"] == "pk-2" and newest["redriven"] is False
            assert "Doe" not in listing.text  # metadata only

            # paging: one at a time, newest first
            first = (await client.get("/api/v1/dead-letters", params={"limit": 1},
                                      headers=bearer(VIEWER))).json()
            assert [d["offset"] for d in first["dead_letters"]] == [1]
            assert parse_positions(first["next_before"])[0] == 1  # older than 0:1 next
            second = (await client.get("/api/v1/dead-letters", headers=bearer(VIEWER),
                                       params={"limit": 1, "before": first["next_before"]})
                      ).json()
            assert [d["offset"] for d in second["dead_letters"]] == [0]
            assert second["next_before"] is None
            bad = await client.get("/api/v1/dead-letters", params={"before": "x"},
                                   headers=bearer(VIEWER))
            assert bad.status_code == 400 and "partition:offset" in bad.json()["error"]

            # a viewer may not see bodies nor redrive; nothing is audited
            denied = await client.get("/api/v1/dead-letters/0/0/body", headers=bearer(VIEWER))
            assert denied.status_code == 403 and "operator" in denied.json()["error"]
            redrive = {"events": [{"partition": 0, "offset": 0}], "confirm": True}
            denied = await client.post("/api/v1/dead-letters/redrive", json=redrive,
                                       headers=bearer(VIEWER))
            assert denied.status_code == 403
            page = await client.get("/console/dead-letters", headers=bearer(VIEWER))
            assert page.status_code == 200 and "evt-1" in page.text
            assert 'type="checkbox"' not in page.text and "Redrive selected" not in page.text
            body_page = await client.get("/console/dead-letters/0/0", headers=bearer(VIEWER))
            assert body_page.status_code == 403
            form = await client.post("/console/dead-letters/redrive", headers=bearer(VIEWER),
                                     data={"event": "0:0", "confirm": "yes"})
            assert form.status_code == 403
            assert audit_lines(audit) == []

            # an operator sees the body; the view is audited by position
            body = await client.get("/api/v1/dead-letters/0/0/body", headers=bearer(OPERATOR))
            assert body.status_code == 200
            assert body.json()["value"] == PHI.decode() and body.json()["key"] == "pk-1"
            assert body.json()["headers"]["dlq_http_status"] == "503"
            missing = await client.get("/api/v1/dead-letters/0/99/body",
                                       headers=bearer(OPERATOR))
            assert missing.status_code == 404 and "0:99" in missing.json()["error"]

            # preview: a count, nothing sent, nothing audited as a redrive
            preview = await client.post("/api/v1/dead-letters/redrive", headers=bearer(OPERATOR),
                                        json={"events": [{"partition": 0, "offset": 0}]})
            assert preview.status_code == 200
            assert preview.json() == {"count": 1, "confirmed": False, "topic": kafka_topic,
                                      "redriven": []}
            assert [e["action"] for e in audit_lines(audit)] == ["view_dead_letter"]
            strict = await client.post("/api/v1/dead-letters/redrive", headers=bearer(OPERATOR),
                                       json={"events": [{"partition": 0, "offset": "0"}]})
            assert strict.status_code == 400

            done = await client.post("/api/v1/dead-letters/redrive", json=redrive,
                                     headers=bearer(OPERATOR))
            assert done.status_code == 200, done.text
            assert done.json()["count"] == 1 and done.json()["confirmed"] is True
            [placed] = done.json()["redriven"]

            [record] = await read_records(kafka_bootstrap, kafka_topic, 1)
            assert f"{record.partition}:{record.offset}" == placed
            assert record.key == b"pk-1" and record.value == PHI
            names = [name for name, _ in record.headers]
            assert "ce_id" in names and not any(n.startswith("dlq_") for n in names)
            assert dict(record.headers)["ce_id"] == b"evt-1"

            view, line = audit_lines(audit)
            assert view == {**view, "user": "olga", "role": "operator",
                            "action": "view_dead_letter",
                            "filter": {"topic": dlq, "events": ["0:0"]}}
            assert line["action"] == "dlq_redrive" and line["user"] == "olga"
            assert line["filter"] == {"topic": dlq, "to": kafka_topic, "events": ["0:0"],
                                      "placed": [placed]}
            assert line["outcome"] == "1 redriven"
            assert "Doe" not in audit.read_text()

            after = (await client.get("/api/v1/dead-letters", headers=bearer(VIEWER))).json()
            assert {d["offset"]: d["redriven"] for d in after["dead_letters"]} == {
                0: True, 1: False}
    # the marks come back after a restart: they are read from the audit log
    async with GatewayService(settings) as gateway:
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            again = (await client.get("/api/v1/dead-letters", headers=bearer(VIEWER))).json()
            assert {d["offset"]: d["redriven"] for d in again["dead_letters"]} == {
                0: True, 1: False}


@bounded(60)
async def test_without_a_bridge_the_api_says_what_to_configure(
        gateway_settings: GatewaySettings, tmp_path: Path) -> None:
    settings = gateway_settings.model_copy(update={"console": console_settings(tmp_path),
                                                   "bridge": None})
    async with GatewayService(settings) as gateway:
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            answer = await client.get("/api/v1/dead-letters", headers=bearer(VIEWER))
            assert answer.status_code == 404
            assert "add a bridge: section" in answer.json()["error"]
            page = await client.get("/console/dead-letters", headers=bearer(VIEWER))
            assert page.status_code == 200 and "add a bridge: section" in page.text
            alerts = await client.get("/api/v1/alerts", headers=bearer(VIEWER))
            assert alerts.status_code == 404 and "alerts:" in alerts.json()["error"]
