"""Tests for the code tables and the rules choosing codes (gender, class, encounter status)."""

from __future__ import annotations

from typing import Any

import pytest

from mappers import convert
from mappers.conversion import default_specs
from tests.support import sample_text

SAMPLE = sample_text("adt_a01")
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V2_0004 = "http://terminology.hl7.org/CodeSystem/v2-0004"


def with_field(segment: str, n: int, value: str, text: str = SAMPLE) -> str:
    """The sample with field ``n`` of ``segment`` set to ``value``."""
    lines = text.split("\r")
    for i, line in enumerate(lines):
        if line.startswith(segment + "|"):
            fields = line.split("|")
            fields += [""] * (n + 1 - len(fields))
            fields[n] = value
            lines[i] = "|".join(fields)
    return "\r".join(lines)


def resource(text: str, kind: str) -> dict[str, Any]:
    entries = convert(text).bundle["entry"]
    return next(e["resource"] for e in entries if e["resource"]["resourceType"] == kind)


@pytest.mark.parametrize(
    ("code", "gender"),
    [("F", "female"), ("M", "male"), ("O", "other"), ("U", "unknown"), ("A", "other"),
     ("N", "unknown"), ("X", "other")],
)
def test_administrative_sex_to_gender(code: str, gender: str) -> None:
    assert resource(with_field("PID", 8, code), "Patient")["gender"] == gender


def test_unknown_sex_is_an_issue_without_the_value() -> None:
    result = convert(with_field("PID", 8, "ZQ"))
    patient = next(e["resource"] for e in result.bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    assert "gender" not in patient
    assert [(i.severity, i.code, i.location) for i in result.issues] == [
        ("warning", "unknown-code", "PID-8")]
    assert "0001" in result.issues[0].text and "ZQ" not in result.issues[0].text


def test_issues_repeat_for_every_message_that_has_them() -> None:
    text = with_field("PID", 8, "ZQ")
    assert [i.code for i in convert(text).issues] == [i.code for i in convert(text).issues] == [
        "unknown-code"]


@pytest.mark.parametrize(
    ("code", "system", "mapped"),
    [("E", ACT, "EMER"), ("I", ACT, "IMP"), ("O", ACT, "AMB"), ("P", ACT, "PRENC"),
     ("R", V2_0004, "R"), ("B", V2_0004, "B"), ("U", V2_0004, "U")],
)
def test_patient_class_to_encounter_class(code: str, system: str, mapped: str) -> None:
    cls = resource(with_field("PV1", 2, code), "Encounter")["class"]
    assert (cls["system"], cls["code"]) == (system, mapped)


def test_missing_or_unknown_patient_class_still_gives_a_required_class() -> None:
    for text in (with_field("PV1", 2, ""), with_field("PV1", 2, "Z")):
        cls = resource(text, "Encounter")["class"]
        assert cls == {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
                       "code": "UNK", "display": "unknown"}


def a08(text: str) -> str:
    return text.replace("ADT^A01^ADT_A01", "ADT^A08^ADT_A01")


@pytest.mark.parametrize(
    ("text", "status"),
    [
        (SAMPLE, "in-progress"),  # A01 (IG table 0003)
        (SAMPLE.replace("ADT^A01^ADT_A01", "ADT^A04^ADT_A01"), "planned"),  # A04 (IG)
        (with_field("PV1", 45, "20240116120000-0500"), "finished"),  # discharged
        (a08(SAMPLE), "in-progress"),  # A08: no status of its own, class I
        (a08(with_field("PV1", 2, "P")), "planned"),
        (a08(with_field("PV1", 2, "N")), "unknown"),
        (a08(with_field("PV1", 2, "")), "unknown"),
    ],
)
def test_encounter_status(text: str, status: str) -> None:
    assert resource(text, "Encounter")["status"] == status


def test_discharge_time_sets_period_end_and_finished() -> None:
    enc = resource(with_field("PV1", 45, "20240116120000-0500"), "Encounter")
    assert enc["period"] == {"start": "2024-01-15T10:25:00-05:00",
                             "end": "2024-01-16T12:00:00-05:00"}


def test_deceased_time_wins_over_the_indicator() -> None:
    text = with_field("PID", 29, "20240120101500-0500", with_field("PID", 30, "Y"))
    patient = resource(text, "Patient")
    assert patient["deceasedDateTime"] == "2024-01-20T10:15:00-05:00"
    assert "deceasedBoolean" not in patient
    assert resource(with_field("PID", 30, "Y"), "Patient")["deceasedBoolean"] is True


def test_every_table_entry_is_usable() -> None:
    specs = default_specs()
    for name, table in specs.tables.items():
        assert table.map or (table.user_defined and table.system is None), name
        for code, value in specs.resolved_tables[name].items():
            assert isinstance(code, str) and code.strip() == code and code, (name, code)
            if table.system is not None and value is not None:
                assert value["system"].startswith(("http://", "urn:")), (name, code)
                assert value["code"], (name, code)


def test_table_0203_types_are_v2_codings() -> None:
    mr = default_specs().resolved_tables["0203"]["MR"]
    assert mr == {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR",
                  "display": "Medical record number"}
