"""v2 -> FHIR -> v2 -> FHIR with the real samples: what both directions map comes back equal.

Resource ids are deterministic from identifiers (and codes, times), so an id that comes
back equal already says the identifying fields survived; the elements are compared too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mappers
from mappers.outbound import to_v2

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "messages"
ENVELOPE = {"MessageHeader", "Provenance"}


def _resources(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
            for e in bundle["entry"] if e["resource"]["resourceType"] not in ENVELOPE}


def _round_trip(sample: str, version: str, message_type: str | None = None
                ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], bytes]:
    first = mappers.convert((SAMPLES / sample).read_text(encoding="utf-8"))
    out = to_v2(first.bundle, control_id="RT1", version=version, message_type=message_type)
    second = mappers.convert(out.message.decode("utf-8"))
    assert second.patient_key == first.patient_key
    assert out.patient_key == first.patient_key
    return _resources(first.bundle), _resources(second.bundle), out.message


def _same(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
          kind: str, elements: list[str]) -> int:
    keys = [k for k in before if k.startswith(kind + "/")]
    for key in keys:
        assert key in after, f"{key} did not come back"
        for element in elements:
            assert before[key].get(element) == after[key].get(element), f"{key}.{element}"
    return len(keys)


PATIENT_ELEMENTS = ["identifier", "name", "birthDate", "gender", "address", "telecom",
                    "maritalStatus"]


@pytest.mark.parametrize(("sample", "version", "message_type"), [
    ("adt_a31.hl7", "2.5.1", "ADT^A31"), ("adt_a08_v23.hl7", "2.3", None),
    ("adt_a31_v281.hl7", "2.8", "ADT^A31")])
def test_adt(sample: str, version: str, message_type: str | None) -> None:
    before, after, raw = _round_trip(sample, version, message_type)
    assert _same(before, after, "Patient", PATIENT_ELEMENTS) == 1
    assert raw.startswith(b"MSH|^~\\&|HL7GW|")


def test_oru_results() -> None:
    before, after, _ = _round_trip("oru_r01.hl7", "2.5.1")
    assert _same(before, after, "Patient", PATIENT_ELEMENTS) == 1
    assert _same(before, after, "Encounter", ["identifier", "class", "status"]) == 1
    assert _same(before, after, "DiagnosticReport",
                 ["identifier", "status", "code", "effectiveDateTime", "issued", "result",
                  "basedOn"]) == 2
    # every result Observation: the same id (order + code), value, units, flags, status
    assert _same(before, after, "Observation",
                 ["status", "code", "valueQuantity", "valueCodeableConcept", "valueRatio",
                  "valueString", "interpretation", "referenceRange", "effectiveDateTime",
                  "issued"]) == 12
    assert _same(before, after, "ServiceRequest", ["identifier", "code"]) == 2


def test_mdm_document() -> None:
    before, after, _ = _round_trip("mdm_t02.hl7", "2.6")
    assert _same(before, after, "DocumentReference",
                 ["masterIdentifier", "status", "docStatus", "type", "date", "author",
                  "authenticator", "content", "subject"]) == 1
    assert _same(before, after, "Patient", PATIENT_ELEMENTS) == 1


def test_vxu_immunization() -> None:
    before, after, _ = _round_trip("vxu_v04.hl7", "2.5.1")
    assert _same(before, after, "Immunization",
                 ["identifier", "status", "vaccineCode", "occurrenceDateTime", "lotNumber",
                  "expirationDate", "doseQuantity", "route", "site", "primarySource",
                  "manufacturer"]) == 1
    assert _same(before, after, "Patient", ["identifier", "name", "birthDate", "gender",
                                            "address", "extension"]) == 1


@pytest.mark.parametrize(("sample", "version"), [("siu_s12.hl7", "2.5"),
                                                  ("siu_s15.hl7", "2.5.1"),
                                                  ("siu_s14.hl7", "2.5.1")])
def test_siu_appointment(sample: str, version: str) -> None:
    before, after, _ = _round_trip(sample, version)
    assert _same(before, after, "Appointment",
                 ["identifier", "status", "serviceType", "start", "end", "minutesDuration",
                  "appointmentType", "comment"]) == 1
    assert _same(before, after, "Patient", PATIENT_ELEMENTS) == 1
