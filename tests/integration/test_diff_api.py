"""The Bundle diff against a real gateway and Kafka: read back, re-mapped, compared.

A message is published; with no profile change the diff is empty; after a profile file is
written into the profiles folder and loaded, the diff names the changed element (the
gender the new code table gives), on the API and highlighted on the page; each look is
audited. A record Kafka does not hold reads as gone, not as an error.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx
import pytest

from gateway.config import GatewaySettings, ProfilesSettings
from gateway.console.kafka_read import read_record
from gateway.service import GatewayService
from tests.integration.conftest import bounded
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

PROFILE = """\
profile: goodhealth
description: Good Health's ADT feed, with its own sex codes
match: {application: EPICADT, facility: GOODHEALTH}
codes:
  "0001": {M: female}
"""


@bounded(150)
async def test_diff_shows_what_a_profile_change_does(gateway_settings: GatewaySettings,
                                                     tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    settings = gateway_settings.model_copy(update={
        "console": console_settings(tmp_path),
        "profiles": ProfilesSettings(dir=profiles, watch_interval_s=0)})
    audit = settings.console.audit_path
    async with GatewayService(settings) as gateway:
        await accepted(gateway, "DIFF-1")
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            rows = (await client.get("/api/v1/messages", headers=bearer(VIEWER))).json()
            row_id = rows["messages"][0]["id"]
            info = await wait_for(client, row_id, status="published")
            path = f"/api/v1/messages/{row_id}/diff"
            assert (await client.get(path, headers=bearer(VIEWER))).status_code == 403

            same = (await client.get(path, headers=bearer(OPERATOR))).json()
            assert same["state"] == "ok" and same["changes"] == []
            assert same["published_at"] == \
                f"{info['kafka_topic']}/{info['kafka_partition']}@{info['kafka_offset']}"
            assert same["before"] == same["after"]
            assert same["before"]["resourceType"] == "Bundle" and same["profile"] is None

            (profiles / "goodhealth.yaml").write_text(PROFILE)
            assert gateway.profiles.reload()
            changed = (await client.get(path, headers=bearer(OPERATOR))).json()
            assert changed["state"] == "ok" and changed["profile"] == "goodhealth"
            (change,) = changed["changes"]
            assert change["element"] == "Patient.gender" and change["kind"] == "changed"
            assert (change["before"], change["after"]) == ("male", "female")
            assert change["path"].startswith("Patient/") and change["path"].endswith(".gender")

            page = await client.get(f"/console/messages/{row_id}/diff",
                                    headers=bearer(OPERATOR))
            assert page.status_code == 200
            marked = re.findall(r'<span class="line changed">([^<]*)</span>', page.text)
            assert [html.unescape(line).strip() for line in marked] == \
                ['"gender": "male",', '"gender": "female",']
            assert "1 element(s) differ" in page.text

            # A record that is not (or no longer) in Kafka reads as gone.
            kafka = settings.kafka
            topic, partition = info["kafka_topic"], info["kafka_partition"]
            assert await read_record(kafka, topic, partition, info["kafka_offset"] + 1000) \
                is None
            record = await read_record(kafka, topic, partition, info["kafka_offset"])
            assert record is not None and record.offset == info["kafka_offset"]

    views = [e for e in audit_lines(audit) if e["action"] == "view_diff"]
    assert [e["targets"] for e in views] == [[row_id]] * 3
    assert "male" not in audit.read_text()  # values never reach the audit log
