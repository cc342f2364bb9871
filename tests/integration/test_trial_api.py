"""``/api/v1/profiles/try`` against a real gateway: MLLP in, SQLite spool, Kafka, uvicorn.

Who may try and apply (operators only: the report shows message values), what the audit
log says (profile, file, counts; never message content), that a trial changes nothing,
and that an applied profile is what the gateway maps the next message with.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.ack import ack_code_of
from gateway.config import GatewaySettings, ProfilesSettings
from gateway.mllp.client import MllpClient
from gateway.service import GatewayService
from tests.integration.conftest import bounded, read_records
from tests.integration.test_console_api import (
    OPERATOR,
    VIEWER,
    audit_lines,
    bearer,
    console_settings,
    wait_for,
)
from tests.support import MESSAGES, PROFILES, with_control_id

pytestmark = pytest.mark.integration

ORU = (MESSAGES / "oru_r01.hl7").read_bytes().replace(b"\n", b"\r").strip(b"\r") + b"\r"
SUNLAB_YAML = (PROFILES / "sunlab.yaml").read_text()
FLIPPED = SUNLAB_YAML.replace("    LOWISH: L\n", "    LOWISH: L\n    H: L\n")
INTERPRETATION = "Observation.interpretation.coding.code"


def flags(bundle: dict[str, Any]) -> list[str]:
    """Every Observation's FHIR interpretation code (v3), in order (the sender's own v2
    coding stays beside it, as sent)."""
    return [c["code"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
            for i in e["resource"].get("interpretation", []) for c in i["coding"]
            if c.get("system", "").endswith("v3-ObservationInterpretation")]


async def poll(client: httpx.AsyncClient, job: str) -> dict[str, Any]:
    for _ in range(300):
        data: dict[str, Any] = (await client.get(f"/api/v1/profiles/try/{job}",
                                                 headers=bearer(OPERATOR))).json()
        if data["state"] != "running":
            return data
        await asyncio.sleep(0.1)
    raise AssertionError(f"trial {job} still running: {data}")


def spool_rows(path: Path) -> list[list[tuple[object, ...]]]:
    """Every row a trial could touch: messages, refusals, the outbound queue."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
                for table in ("messages", "rejected", "outbound")]
    finally:
        conn.close()


@bounded(150)
async def test_try_report_roles_audit_apply(gateway_settings: GatewaySettings, tmp_path: Path,
                                            kafka_bootstrap: str, kafka_topic: str) -> None:
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES, folder)
    (folder / "sunlab.yaml.draft").write_text(FLIPPED)
    settings = gateway_settings.model_copy(update={
        "console": console_settings(tmp_path),
        "profiles": ProfilesSettings(dir=folder, watch_interval_s=0)})
    audit = settings.console.audit_path
    async with GatewayService(settings) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
            for cid in ("LAB-1", "LAB-2", "LAB-3"):
                assert ack_code_of((await mllp.send(with_control_id(ORU, cid))).decode()
                                   ) in ("AA", "CA")
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            listing = (await client.get("/api/v1/messages", headers=bearer(VIEWER))).json()
            ids = [m["id"] for m in listing["messages"]]
            for row_id in ids:
                await wait_for(client, row_id, status="published")
            first = (await read_records(kafka_bootstrap, kafka_topic, 3))[0]
            assert "H" in flags(orjson.loads(first.value))
            spool_before = spool_rows(settings.spool.path)

            # Viewers may not try, look or apply; nothing of that is audited.
            denied = await client.post("/api/v1/profiles/try", json={"yaml": FLIPPED},
                                       headers=bearer(VIEWER))
            assert denied.status_code == 403 and "operator" in denied.json()["error"]
            for path in ("/api/v1/profiles/try/abcdefgh12", ):
                assert (await client.get(path, headers=bearer(VIEWER))).status_code == 403
            for action in ("apply", "discard"):
                assert (await client.post(f"/api/v1/profiles/try/abcdefgh12/{action}",
                                          headers=bearer(VIEWER))).status_code == 403
            assert not audit.exists()

            # A browser session must send its CSRF token with a change.
            async with httpx.AsyncClient(base_url=base, timeout=20) as browser:
                login = await browser.post("/console/login", data={"token": OPERATOR})
                assert login.status_code == 303 and browser.cookies.get("hl7gw_console")
                forged = await browser.post("/api/v1/profiles/try", json={"yaml": FLIPPED})
                assert forged.status_code == 403
                assert "did not come from this console" in forged.json()["error"]
            assert "profile_try" not in (audit.read_text() if audit.exists() else "")

            # A bad profile: 400 naming file, line and field; not started, not audited.
            bad = await client.post("/api/v1/profiles/try", headers=bearer(OPERATOR),
                                    json={"yaml": FLIPPED.replace('"0078":', '"9999":')})
            assert bad.status_code == 400
            assert bad.json()["error"].startswith("pasted.yaml:")
            assert "codes.9999: unknown code table" in bad.json()["error"]
            neither = await client.post("/api/v1/profiles/try", headers=bearer(OPERATOR),
                                        json={"last": 5})
            assert neither.status_code == 400 and "yaml" in neither.json()["error"]
            assert "profile_try" not in (audit.read_text() if audit.exists() else "")

            # The operator's trial of the draft: every message changed, the flag element.
            started = await client.post("/api/v1/profiles/try", headers=bearer(OPERATOR),
                                        json={"draft": "sunlab.yaml.draft", "since": "1h"})
            assert started.status_code == 202, started.text
            job = started.json()["job"]
            done = await poll(client, job)
            assert done["state"] == "done", done
            report = done["report"]
            assert report["tried"] == 3 and report["changed"] == 3
            assert report["now_failing"] == 0
            assert {"element": INTERPRETATION, "messages": 3} == {
                k: v for k, v in next(e for e in report["elements"]
                                      if e["element"] == INTERPRETATION).items()
                if k != "changes"}
            example = next(x for x in report["examples"] if x["element"] == INTERPRETATION)
            assert (example["before"], example["after"]) == ("H", "L")
            assert example["control_id"] in ("LAB-1", "LAB-2", "LAB-3")
            # ... and it changed nothing: same rows, same live file, nothing published. (The
            # file's bytes move under a live gateway: its checkpoints and search index.)
            assert spool_rows(settings.spool.path) == spool_before
            assert (folder / "sunlab.yaml").read_text() == SUNLAB_YAML
            started_line, result_line = [a for a in audit_lines(audit)
                                         if a["action"].startswith("profile_")]
            assert started_line["action"] == "profile_try" and started_line["user"] == "olga"
            assert started_line["filter"]["profile"] == "sunlab"
            assert started_line["filter"]["file"] == "sunlab.yaml"
            assert started_line["filter"]["source"] == "sunlab.yaml.draft"
            assert started_line["outcome"] == f"started trial {job}"
            assert result_line["action"] == "profile_try_result"
            assert result_line["outcome"].startswith("tried 3, changed 3, now failing 0")
            text = audit.read_text()
            assert "Quinn" not in text and "7712345" not in text  # no PHI in the audit log

            # Discard one trial; apply another: the file is written, the set reloaded.
            other = (await client.post("/api/v1/profiles/try", headers=bearer(OPERATOR),
                                       json={"yaml": FLIPPED})).json()["job"]
            await poll(client, other)
            dropped = await client.post(f"/api/v1/profiles/try/{other}/discard",
                                        headers=bearer(OPERATOR))
            assert dropped.status_code == 200 and dropped.json() == {"discarded": other}
            refused = await client.post(f"/api/v1/profiles/try/{other}/apply",
                                        headers=bearer(OPERATOR))
            assert refused.status_code == 409 and "discarded" in refused.json()["error"]
            generation = gateway.profiles.generation
            applied = await client.post(f"/api/v1/profiles/try/{job}/apply",
                                        headers=bearer(OPERATOR))
            assert applied.status_code == 200, applied.text
            assert applied.json() == {"applied": "sunlab.yaml", "profile": "sunlab",
                                      "generation": generation + 1}
            assert (folder / "sunlab.yaml").read_text() == FLIPPED
            assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
            last = audit_lines(audit)[-1]
            assert last["action"] == "profile_apply" and last["filter"]["job"] == job
            assert last["outcome"].startswith(f"live as generation {generation + 1}")
            assert [a["action"] for a in audit_lines(audit)].count("profile_discard") == 1

            # Applying twice is refused; the next message is mapped with the new profile.
            again = await client.post(f"/api/v1/profiles/try/{job}/apply",
                                      headers=bearer(OPERATOR))
            assert again.status_code == 409
            async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
                await mllp.send(with_control_id(ORU, "LAB-4"))
            records = await read_records(kafka_bootstrap, kafka_topic, 4)
            newest = next(r for r in records if b"LAB-4" in r.value)
            assert "H" not in flags(orjson.loads(newest.value))
            assert "L" in flags(orjson.loads(newest.value))
            assert json.loads(first.value) != json.loads(newest.value)
