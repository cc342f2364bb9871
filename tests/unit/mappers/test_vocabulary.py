"""Codes are claimed for a code system only when that system defines them.

A FHIR server (and the HAPI validator, tests/integration/test_hapi_validation.py) rejects a
site's code under an HL7 table's URL, a UCUM code that is not UCUM and a language that is
not BCP-47. These tests pin each rule at the datatype that applies it.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mappers.datatypes.vocabulary import (
    HL7_SYSTEM,
    HL7_TABLES,
    bcp47_tag,
    in_hl7_table,
    is_ucum,
    ucum_code,
)
from tests.support import REPO, sample_text
from tests.unit.mappers.test_mapping_codes import resource, with_field

SPECS = REPO / "mappers" / "specs"
A01, A03, ORU, RDE = (sample_text(n) for n in ("adt_a01", "adt_a03", "oru_r01", "rde_o11"))
UCUM = "http://unitsofmeasure.org"


def _codings(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        own = [value] if isinstance(value.get("system"), str) and "code" in value else []
        return own + [c for v in value.values() for c in _codings(v)]
    if isinstance(value, list):
        return [c for v in value for c in _codings(v)]
    return []


def _spec_codings() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(SPECS.glob("*/*.yaml")):
        spec = yaml.safe_load(path.read_text())
        if path.parent.name == "codes" and isinstance(spec.get("system"), str):
            for entry in (spec.get("map") or {}).values():  # entries become Codings
                code = entry.get("code") if isinstance(entry, dict) else entry
                if isinstance(code, str):
                    out.append((path.name, spec["system"], code))
        out += [(path.name, c["system"], str(c["code"])) for c in _codings(spec)]
    return out


def test_every_fixed_hl7_coding_in_the_specs_is_defined_by_its_table() -> None:
    wrong = [(name, system, code) for name, system, code in _spec_codings()
             if system.startswith(HL7_SYSTEM) and not in_hl7_table(system, code)]
    assert wrong == []


def test_the_table_check_knows_r4_tables_and_leaves_others_alone() -> None:
    assert len(HL7_TABLES) > 400 and "CHD" in HL7_TABLES["0063"]
    assert in_hl7_table(f"{HL7_SYSTEM}0063", "CHD")
    assert not in_hl7_table(f"{HL7_SYSTEM}0063", "DAU")
    assert not in_hl7_table(f"{HL7_SYSTEM}0230", "SURG")
    assert in_hl7_table(f"{HL7_SYSTEM}0064", "V02")  # 0064 is not in R4: nothing to check
    assert in_hl7_table("http://loinc.org", "anything")


def _relationships(nk1_3: str, nk1_7: str = "") -> list[dict[str, Any]]:
    text = with_field("NK1", 7, nk1_7, with_field("NK1", 3, nk1_3, A03))
    return resource(text, "RelatedPerson")["relationship"]  # type: ignore[no-any-return]


def test_a_site_code_named_as_an_hl7_table_code_keeps_its_code_but_not_the_system() -> None:
    daughter, contact = _relationships("DAU^Daughter^HL70063", "EC^Emergency Contact^HL70131")
    assert daughter == {"coding": [{"code": "DAU", "display": "Daughter"}]}
    assert contact == {"coding": [{"code": "EC", "display": "Emergency Contact"}]}


def test_a_table_code_keeps_its_system() -> None:
    child, contact = _relationships("CHD^Child^HL70063", "C^Emergency Contact^HL70131")
    assert child["coding"][0] == {"system": f"{HL7_SYSTEM}0063", "code": "CHD",
                                  "display": "Child"}
    assert contact["coding"] == [{"system": f"{HL7_SYSTEM}0131", "code": "C",
                                  "display": "Emergency Contact"}]


@pytest.mark.parametrize(("evn_4", "system"), [
    ("ADM^Admission^HL70062", None), ("01^Patient request^HL70062", f"{HL7_SYSTEM}0062")])
def test_event_reason_is_checked_against_table_0062(evn_4: str, system: str | None) -> None:
    reason = resource(with_field("EVN", 4, evn_4, A01), "Provenance")["reason"][0]
    assert reason["coding"][0].get("system") == system


GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"


@pytest.mark.parametrize(("tq1_3", "codings"), [
    ("QD^Every day^HL70335", [{"code": "QD", "display": "Every day"},
                              {"system": GTS, "code": "QD", "display": "QD"}]),
    ("Q6H^Every 6 hours^HL70335", [{"code": "Q6H", "display": "Every 6 hours"},
                                   {"system": GTS, "code": "Q6H", "display": "Q6H"}]),
    ("Q2D", [{"code": "Q2D"}, {"system": GTS, "code": "QOD", "display": "QOD"}]),
    ("Q5H", [{"code": "Q5H"}]),
    ("BID^Twice a day^HL70335", [{"system": f"{HL7_SYSTEM}0335", "code": "BID",
                                  "display": "Twice a day"},
                                 {"system": GTS, "code": "BID", "display": "BID"}]),
])
def test_timing_codes_outside_table_0335_lose_its_system_and_gain_an_abbreviation(
        tq1_3: str, codings: list[dict[str, str]]) -> None:
    request = resource(with_field("TQ1", 3, tq1_3, RDE), "MedicationRequest")
    assert request["dosageInstruction"][0]["timing"]["code"]["coding"] == codings


def _language(pid_15: str) -> dict[str, Any]:
    patient = resource(with_field("PID", 15, pid_15, A01), "Patient")
    return patient["communication"][0]["language"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("pid_15", "language"), [
    ("ENG^English^HL70296", {"coding": [{"system": "urn:ietf:bcp:47", "code": "en",
                                         "display": "English"}]}),
    ("SPA", {"coding": [{"system": "urn:ietf:bcp:47", "code": "es", "display": "Spanish"}]}),
    ("E^English^HL70296", {"coding": [{"system": "urn:ietf:bcp:47", "code": "en",
                                       "display": "English"}]}),
    ("es-mx^Spanish (Mexico)^ISO639", {"coding": [{"system": "urn:ietf:bcp:47",
                                                   "code": "es-MX",
                                                   "display": "Spanish (Mexico)"}]}),
    ("KLI^Klingon^L", {"text": "Klingon"}),
])
def test_a_language_is_coded_in_bcp47_only(pid_15: str, language: dict[str, Any]) -> None:
    assert _language(pid_15) == language


def _quantity(obx_6: str) -> dict[str, Any]:
    observation = resource(with_field("OBX", 6, obx_6, ORU), "Observation")
    return observation["valueQuantity"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("obx_6", "unit"), [
    ("mg/dL^milligram per deciliter^UCUM", {"unit": "milligram per deciliter",
                                            "system": UCUM, "code": "mg/dL"}),
    ("MG/DL^^UCUM", {"unit": "MG/DL", "system": UCUM, "code": "mg/dL"}),
    ("mmHg", {"unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}),
    ("tabs^tablets", {"unit": "tablets", "system": UCUM, "code": "{tbl}"}),
    ("widgets^^UCUM", {"unit": "widgets"}),
    ("mg/dl^mg per dl^L^mg/dL^^UCUM", {"unit": "mg per dl", "system": UCUM, "code": "mg/dL"}),
    ("XYZ^local unit^L", {"unit": "local unit"}),
])
def test_a_unit_is_ucum_only_when_it_is(obx_6: str, unit: dict[str, Any]) -> None:
    quantity = _quantity(obx_6)
    assert {k: v for k, v in quantity.items() if k != "value"} == unit


@pytest.mark.parametrize("code", [
    "mg/dL", "mm[Hg]", "10*3/uL", "10*9/L", "%", "{tbl}", "kg/m2", "/min", "m.s-2", "meq/L",
    "mL/min/{1.73_m2}", "[degF]", "Cel", "ug/mL", "[IU]/L", "U/L", "fL", "pg", "h", "mmol/L"])
def test_valid_ucum(code: str) -> None:
    assert is_ucum(code) and ucum_code(code) == code


@pytest.mark.parametrize("code", ["MG/DL", "mmHg", "bpm", "mEq/L", "tabs", "cells", "mg dL",
                                  "", "x10e3/uL", "kg/m^2", "mg/(24.h)"])
def test_invalid_ucum(code: str) -> None:
    assert not is_ucum(code)


@pytest.mark.parametrize(("sent", "code"), [
    ("MG/DL", "mg/dL"), ("mmHg", "mm[Hg]"), ("K/uL", "10*3/uL"), ("bpm", "/min"),
    ("mEq/L", "meq/L"), ("lbs", "[lb_av]"), ("widgets", None)])
def test_v2_unit_spellings(sent: str, code: str | None) -> None:
    assert ucum_code(sent) == code


@pytest.mark.parametrize(("code", "tag"), [
    ("en", "en"), ("EN", "en"), ("en-us", "en-US"), ("es_419", "es-419"), ("eng", None),
    ("xx", None), ("english", None)])
def test_bcp47_tags(code: str, tag: str | None) -> None:
    assert bcp47_tag(code) == tag
