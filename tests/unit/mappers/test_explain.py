"""Tests for ``mappers.explain``: provenance of each element, translations, issues, unmapped."""

from __future__ import annotations

import orjson
import pytest

from mappers import UnsupportedMessageType, convert, explain
from tests.support import SAMPLES

A01 = (SAMPLES / "adt_a01.hl7").read_bytes().decode()
A04 = (SAMPLES / "adt_a04.hl7").read_bytes().decode()
ORU = (SAMPLES / "messages" / "oru_r01.hl7").read_bytes().decode()


def test_elements_name_their_source_fields_and_components() -> None:
    report = explain(A01)
    assert "Patient.name[0].family <- PID-5.1" in report
    assert "Patient.name[1] <- PID-5 (XPN)" in report  # the second repetition
    assert "Patient.birthDate <- PID-7 (TS)" in report
    assert "Encounter.participant[0].individual <- PV1-7 (XCN)" in report
    assert "Encounter.participant[1].individual <- PV1-8 (XCN)" in report
    assert "Encounter.class <- PV1-2 (code)" in report
    patient_id = convert(A01).patient_key
    assert f"Encounter.subject <- reference to Patient/{patient_id}" in report
    assert "Encounter.status" in report


def test_code_translations_follow_the_element_they_fed() -> None:
    lines = explain(A01).splitlines()
    gender = lines.index("  Patient.gender <- PID-8 (code)")
    assert lines[gender + 1].strip() == "code 0001: M -> male  [PID-8]"
    klass = lines.index("  Encounter.class <- PV1-2 (code)")
    assert lines[klass + 1].strip() == "code 0004: I -> IMP  [PV1-2]"


def test_issues_and_unmapped_are_listed() -> None:
    report = explain(A04)
    assert report.rstrip().endswith("Unmapped (2): ZPD-1, ZPD-2")
    bad = explain(A01.replace("|19800614|M|", "|19800614|Q|"))
    assert "warning unknown-code at PID-8: code not in table 0001; left out" in bad
    assert "code 0001: Q not in the table  [PID-8]" in bad


def test_oru_groups_are_explained_per_resource() -> None:
    report = explain(ORU)
    assert report.count("Observation/") >= 12
    assert "Observation.note[0].text <- NTE-3 (text)" in report
    assert "DiagnosticReport.result[6] <- reference to Observation/" in report
    assert "code 0085: C -> corrected  [OBX-11]" in report


def test_explain_costs_nothing_on_the_normal_path_and_changes_nothing() -> None:
    before = orjson.dumps(convert(ORU).bundle)
    explain(ORU)
    assert orjson.dumps(convert(ORU).bundle) == before


def test_explain_after_convert_still_shows_translations() -> None:
    convert(A01)  # fills the per-step memo of pure datatypes
    assert "code 0002: M -> M  [PID-16]" in explain(A01)


def test_explain_shows_no_names_or_identifiers() -> None:
    report = explain(A01)
    for value in ("Everyman", "4820017", "2222 Home Street", "adam.everyman"):
        assert value not in report


def test_explain_refuses_like_convert() -> None:
    with pytest.raises(UnsupportedMessageType):
        explain(A01.replace("ADT^A01^ADT_A01", "QRY^A19"))


def test_each_rule_cites_the_ig_row_it_implements() -> None:
    lines = explain(A01).splitlines()
    gender = lines.index("  Patient.gender <- PID-8 (code)")
    assert lines[gender + 2] == "    IG PID[Patient]: PID-8 -> Patient.gender"  # after its code
    name = lines.index("  Patient.name[0] <- PID-5 (XPN)")
    block = lines[name + 1:lines.index("  Patient.name[1] <- PID-5 (XPN)")]
    assert block[-1] == "    IG PID[Patient]: PID-5 -> Patient.name"
    # the extension row whose attribute is closest to the rule's path, not its url row
    assert "    IG PID[Patient]: PID-6 -> Patient.extension.valueString" in lines
    assert "    IG PV1[Encounter]: PV1-2 -> Encounter.class" in lines
    report = explain(ORU)
    assert "    IG OBX[Observation]: OBX-3 -> Observation.code" in report
    assert "    IG OBR[ServiceRequest]: OBR-4 -> ServiceRequest.code" in report


def test_a_rule_the_ig_does_not_have_cites_nothing() -> None:
    lines = explain(A01).splitlines()
    # Provenance.activity from MSH-9.2 is ours: the IG's EVN[Provenance] map has no MSH row
    activity = lines.index("  Provenance.activity.coding[0].code <- MSH-9.2 (code)")
    assert lines[activity + 1].startswith("  Provenance.")  # the next element, no IG line
    # a field of another segment is cited from that segment's map for the resource
    assert "    IG MSH[Encounter]: MSH-9 -> Encounter.status" in lines


def test_a_reference_cites_the_ig_row_of_the_field_its_resource_is_made_of() -> None:
    lines = explain(ORU).splitlines()
    performer = next(i for i, ln in enumerate(lines)
                     if ln.startswith("  Observation.performer[0] <- reference to Practitioner/"))
    assert lines[performer + 1] == ("    IG OBX[Observation]: OBX-16 -> Observation.performer"
                                    "(PractitionerRole.practitioner(Practitioner))")
    subject = next(i for i, ln in enumerate(lines)
                   if ln.startswith("  Observation.subject <- reference to Patient/"))
    assert not lines[subject + 1].lstrip().startswith("IG ")  # the IG has no PID[Observation]
