"""Destination profiles and the outbound spec files: what a profile changes, and every
mistake named by file and line."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest

import mappers
from mappers.errors import ProfileError, SpecError
from mappers.outbound import load_outbound_profile, to_v2
from mappers.outbound.encoding import escape
from mappers.outbound.loading import OUTBOUND_ROOT, load_specs
from mappers.outbound.times import to_dtm

OID = "urn:oid:2.16.840.1.113883.3.7777.1"
EXT = "https://north.example/fhir/StructureDefinition/news2-band"
PATIENT: dict[str, Any] = {"resourceType": "Patient", "id": "p1", "gender": "female",
                           "identifier": [{"system": OID, "value": "M1"},
                                          {"system": "urn:oid:1.2.3", "value": "X9"}],
                           "name": [{"family": "Doe"}]}
RISK: dict[str, Any] = {
    "resourceType": "RiskAssessment", "id": "ra", "status": "final",
    "subject": {"reference": "Patient/p1"}, "occurrenceDateTime": "2026-03-01T11:00:00Z",
    "extension": [{"url": EXT, "valueCodeableConcept": {"coding": [{"code": "AMBER"}]}}],
    "note": [{"text": "escalate"}],
    "prediction": [{"qualitativeRisk": {"coding": [{"code": "high"}]}}]}
VITAL: dict[str, Any] = {"resourceType": "Observation", "id": "rr", "status": "final",
                         "subject": {"reference": "Patient/p1"},
                         "code": {"coding": [{"system": "http://loinc.org", "code": "9279-1",
                                              "display": "Respiratory rate"}]},
                         "valueInteger": 25}
PROFILE = f"""\
profile: north-ehr
description: the north campus EHR
match: {{application: NORTH}}          # an inbound key: accepted, ignored here
timezone: Europe/Berlin
identifier_systems:
  NORTHMRN: "urn:oid:2.16.840.1.113883.3.7777.1"
codes:
  "0001": {{female: W}}
local_codes:
  - {{system: 99LOC, code: RR, to: {{system: "http://loinc.org", code: "9279-1"}}}}
fields:
  - {{field: ZNW-2, resource: RiskAssessment, type: CWE, extension: {EXT}}}
  - {{field: ZNW-3, resource: RiskAssessment, type: ST, path: "note[0].text"}}
"""


def _bundle() -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r}
                      for r in (PATIENT, RISK, VITAL)]}


def _write(tmp_path: Path, text: str, name: str = "north.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_profile_changes_codes_authorities_local_codes_times_and_z_segments(
        tmp_path: Path) -> None:
    profile = load_outbound_profile(_write(tmp_path, PROFILE))
    plain = to_v2(_bundle(), control_id="C1",
                  timestamp=dt.datetime(2026, 3, 1, 11, 0, tzinfo=dt.UTC)).message.decode()
    text = to_v2(_bundle(), control_id="C1", profile=profile,
                 timestamp=dt.datetime(2026, 3, 1, 11, 0, tzinfo=dt.UTC)).message.decode()
    msg = mappers.parse(text)
    pid = msg.get("PID")
    assert pid is not None
    assert [r.text for r in pid.field(3).repetitions] == ["M1^^^NORTHMRN", "X9^^^&1.2.3&ISO"]
    assert pid.field(8).value == "W"
    assert plain.split("\r")[1].endswith("||Doe|||F")
    # local code first, the standard one as the alternate
    obx = next(s for s in text.split("\r") if s.startswith("OBX|2|"))
    assert "|RR^Respiratory rate^99LOC^9279-1^Respiratory rate^LN|" in obx
    # times in the destination's zone
    assert "|20260301120000+0100|" in text
    assert "|20260301110000+0000|" in plain
    # the Z-segment right after the assessment's OBR group item
    segments = [s for s in text.split("\r") if s]
    assert "ZNW|" not in plain
    znw = [s for s in segments if s.startswith("ZNW|")]
    assert znw == ["ZNW||AMBER|escalate"]


@pytest.mark.parametrize(("text", "expected"), [
    ("profile: x\ncodes:\n  \"9999\": {a: b}\n", "north.yaml:3: codes.9999: unknown code table"),
    ("profile: x\ntimezone: Mars/Base\n", "north.yaml:2: timezone"),
    ("profile: x\nfields:\n  - {field: PID-2, resource: Patient, type: ST, path: id}\n",
     "north.yaml:2: fields: "),
    ("profile: x\nfields:\n  - {field: ZAA-2, resource: Patient, type: NOPE, path: id}\n",
     "unknown writer 'NOPE'"),
    ("profile: x\nbogus: 1\n", "north.yaml:2: bogus: unknown key"),
])
def test_profile_mistakes_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ProfileError, match=expected.replace(".", r"\.")):
        load_outbound_profile(_write(tmp_path, text))


def _specs_copy(tmp_path: Path) -> Path:
    root = tmp_path / "outbound"
    shutil.copytree(OUTBOUND_ROOT, root)
    return root


def test_the_built_in_specs_load(tmp_path: Path) -> None:
    specs = load_specs(_specs_copy(tmp_path))
    assert {m.spec.message for m in specs.messages} == {"ORU", "ADT", "MDM", "SIU", "VXU"}


@pytest.mark.parametrize(("file", "text", "expected"), [
    ("segments/zz.yaml", "segment: ZZZ\nrules:\n  - {field: ZZZ-1, path: id, type: XPNN}\n",
     "zz.yaml:3: rules[0].type: unknown writer 'XPNN'"),
    ("segments/zz.yaml", "segment: ZZZ\nrules:\n  - field: ZZZ-1\n    path: a..b\n",
     "zz.yaml:4: rules[0].path: 'a..b'"),
    ("segments/zz.yaml", "segment: ZZZ\nrules:\n  - {field: ZZZ-1, value: x, path: id}\n",
     "zz.yaml:3: rules[0]: a rule needs exactly one of"),
    ("segments/zz.yaml", "segment: ZZZ\nrules:\n  - {field: ZZZ-1, path: id, table: \"0999\"}\n",
     "zz.yaml:3: rules[0].table: unknown code table"),
    ("messages/zz.yaml", "message: ZZZ\nfocus: Patient\nprecedence: 1\nevents:\n"
     "  - {event: Z01, structure: ZZZ_Z01}\nbody:\n  - {segment: NOPE}\n",
     "zz.yaml:7: body[0].segment: no segment spec 'NOPE'"),
    ("messages/zz.yaml", "message: ZZZ\nfocus: Patient\nprecedence: 1\nevents:\n"
     "  - {event: Z01, structure: ZZZ_Z01, when: {path: x}}\nbody: []\n",
     "zz.yaml:5: events[0].when[0]: a condition needs exactly one of"),
])
def test_spec_mistakes_name_file_and_line(tmp_path: Path, file: str, text: str,
                                          expected: str) -> None:
    root = _specs_copy(tmp_path)
    (root / file).write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_specs(root)


@pytest.mark.parametrize(("value", "expected"), [
    ("a|b^c~d\\e&f", "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f"),
    ("one\r\ntwo", "one\\X0D\\\\X0A\\two"),
])
def test_escape(value: str, expected: str) -> None:
    assert escape(value) == expected


def test_escape_formatted_text() -> None:
    assert escape("one\r\ntwo\nthree", formatted=True) == "one\\.br\\two\\.br\\three"


@pytest.mark.parametrize(("value", "zone", "expected"), [
    ("2024-03-12", None, "20240312"),
    ("2024-03", None, "202403"),
    ("2024-03-12T08:15:00-04:00", None, "20240312081500-0400"),
    ("2024-03-12T08:15:00.250Z", None, "20240312081500.250+0000"),
    ("2024-03-12T08:15:00Z", "America/Chicago", "20240312031500-0500"),
    ("2024-03-12", "America/Chicago", "20240312"),
])
def test_times_keep_precision_and_offset(value: str, zone: str | None, expected: str) -> None:
    assert to_dtm(value, timezone=zone) == expected
