"""The NEWS2 processor's answers pass the official FHIR validator (HAPI, R4, offline).

The sample vitals message is mapped as the gateway maps it (the WARDMON profile from
samples/profiles turns the ward's codes into LOINC), fed to :class:`News2Processor`, and
its result Bundle validated: a complete score (final, with a risk band) and an incomplete
one (preliminary, the temperature missing, no total). Without Java or Maven the test
fails when ``CI`` is set and skips elsewhere, saying what to install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.cloud.news2_processor import News2Processor
from connectors.events import Event
from gateway.errors import MissingTool
from gateway.prepare import convert, prepare
from mappers.profiles import ProfileSet
from tests.support import PROFILES, SAMPLES
from tests.support.hapi_validator import failures, need_validator, validate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SAMPLE = SAMPLES / "oru_r01_vitals.hl7"


def _inbound(raw: bytes) -> dict[str, Any]:
    return convert(prepare(raw, profiles=ProfileSet.load(PROFILES))).bundle


def _event(event_id: str) -> Event:
    return Event(id=event_id, source="urn:hl7gw:test", type="hl7gw.fhir.oru.r01",
                 subject=None, time="2024-03-12T13:15:02.117Z", key=None, data=b"{}")


async def test_news2_results_pass_the_hapi_validator(tmp_path: Path) -> None:
    raw = SAMPLE.read_bytes()
    complete = await News2Processor().process(_event("vitals-1"), _inbound(raw))
    without_temp = b"\r".join(s for s in raw.split(b"\r") if b"|TEMP^" not in s)
    incomplete = await News2Processor().process(_event("vitals-2"), _inbound(without_temp))
    assert complete is not None and incomplete is not None
    score = next(e["resource"] for e in complete["entry"]
                 if e["resource"]["resourceType"] == "Observation")
    assert score["valueInteger"] == 6  # the sample is medium risk
    partial = next(e["resource"] for e in incomplete["entry"]
                   if e["resource"]["resourceType"] == "Observation")
    assert partial["status"] == "preliminary" and "valueInteger" not in partial

    files = []
    for name, result in (("complete", complete), ("incomplete", incomplete)):
        path = tmp_path / f"news2-{name}.json"
        path.write_text(json.dumps(result, indent=2))
        files.append(path)
    try:
        issues = validate(files)
    except MissingTool as exc:
        need_validator(str(exc))
    found = failures(issues)
    assert found == [], "\n".join(found)
    assert set(issues) == set(files)  # the validator read both
