"""FHIR -> HL7 v2 rendering (mappers.outbound): each message type from a hand-written resource,
checked field by field after parsing the output back with ``mappers.parse``."""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

import mappers
from mappers.hl7v2.message import Segment
from mappers.outbound import OutboundError, control_id_for, message_types_for, to_v2

STAMP = dt.datetime(2026, 3, 1, 12, 30, 5, tzinfo=dt.UTC)
LOINC = "http://loinc.org"
OID = "urn:oid:2.16.840.1.113883.3.7777.1"

PATIENT: dict[str, Any] = {
    "resourceType": "Patient", "id": "pat-1",
    "identifier": [{"system": OID, "value": "MRN-77",
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                         "code": "MR"}]},
                    "assigner": {"display": "RIVERSIDE"}},
                   {"system": "urn:id:BILLING", "value": "AC-1"}],
    "name": [{"use": "official", "family": "Quinn", "given": ["Harriet", "May"],
              "prefix": ["Ms."]}],
    "birthDate": "1962-03-04", "gender": "female",
    "address": [{"use": "home", "line": ["17 Larch Road", "Flat 2"], "city": "Springfield",
                 "state": "IL", "postalCode": "62704", "country": "USA"}],
    "telecom": [{"system": "phone", "value": "+1 217 5550199", "use": "home"},
                {"system": "phone", "value": "+1 217 5550100", "use": "work"},
                {"system": "email", "value": "hq@example.org"}],
    "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                                  "code": "M"}]},
    "deceasedBoolean": False,
}


def bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind,
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]}


def render(resource: dict[str, Any], **kwargs: Any) -> tuple[mappers.Message, str]:
    kwargs.setdefault("timestamp", STAMP)
    out = to_v2(resource, control_id=kwargs.pop("control_id", "CTL1"), **kwargs)
    text = out.message.decode("utf-8")
    assert text.endswith("\r") and "\n" not in text
    return mappers.parse(text), text


def seg(msg: mappers.Message, segment_id: str, occ: int = 1) -> Segment:
    found = msg.get(segment_id, occ)
    assert found is not None, f"no {segment_id} #{occ}"
    return found


def comps(msg: mappers.Message, segment_id: str, n: int, occ: int = 1, k: int = 9
          ) -> list[str]:
    return seg(msg, segment_id, occ).field(n).first.decoded(k)


def reps(msg: mappers.Message, segment_id: str, n: int, occ: int = 1) -> list[str]:
    return [r.text for r in seg(msg, segment_id, occ).field(n).repetitions]


def ids(text: str) -> list[str]:
    return [s[:3] for s in text.split("\r") if s]


# --- ORU^R01 from a DiagnosticReport -------------------------------------------------------

def _report_bundle() -> dict[str, Any]:
    glucose = {"resourceType": "Observation", "id": "obs-glu", "status": "final",
               "code": {"coding": [{"system": LOINC, "code": "2345-7", "display": "Glucose"}]},
               "subject": {"reference": "urn:uuid:pat-1"},
               "effectiveDateTime": "2024-03-12T08:15:00-04:00",
               "valueQuantity": {"value": 112, "unit": "mg/dL",
                                 "system": "http://unitsofmeasure.org", "code": "mg/dL"},
               "interpretation": [{"coding": [{
                   "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                   "code": "H"}]}],
               "referenceRange": [{"low": {"value": 70}, "high": {"value": 99}}],
               "note": [{"text": "fasting"}]}
    colour = {"resourceType": "Observation", "id": "obs-col", "status": "preliminary",
              "code": {"coding": [{"system": LOINC, "code": "5778-6"}]},
              "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct",
                                                   "code": "371244009",
                                                   "display": "Yellow"}]}}
    remark = {"resourceType": "Observation", "id": "obs-txt", "status": "final",
              "code": {"coding": [{"system": LOINC, "code": "8251-1"}]},
              "valueString": "line one\nline two"}
    count = {"resourceType": "Observation", "id": "obs-int", "status": "final",
             "code": {"coding": [{"system": LOINC, "code": "777-3"}]}, "valueInteger": 7}
    panel = {"resourceType": "Observation", "id": "obs-panel", "status": "final",
             "code": {"coding": [{"system": LOINC, "code": "24356-8"}]},
             "hasMember": [{"reference": "Observation/obs-int"}]}
    report = {"resourceType": "DiagnosticReport", "id": "dr-1", "status": "final",
              "identifier": [{"system": "urn:id:SUNLAB", "value": "FL-1"}],
              "code": {"coding": [{"system": LOINC, "code": "24323-8", "display": "CMP"}]},
              "subject": {"reference": "urn:uuid:pat-1"},
              "effectiveDateTime": "2024-03-12T08:15:00-04:00",
              "result": [{"reference": "urn:uuid:obs-glu"}, {"reference": "urn:uuid:obs-col"},
                         {"reference": "urn:uuid:obs-txt"},
                         {"reference": "Observation/obs-panel"}]}
    return bundle(PATIENT, report, glucose, colour, remark, panel, count)


def test_oru_from_a_diagnostic_report() -> None:
    msg, text = render(_report_bundle(), sending_application="GW", sending_facility="SITE",
                       receiving_application="EHR", receiving_facility="HOSP")
    assert ids(text) == ["MSH", "PID", "ORC", "OBR", "OBX", "NTE", "OBX", "OBX", "OBX", "OBX"]
    assert comps(msg, "MSH", 9, k=3) == ["ORU", "R01", "ORU_R01"]
    assert [seg(msg, "MSH").field(n).value for n in (3, 4, 5, 6, 10, 11, 12, 18)] == \
        ["GW", "SITE", "EHR", "HOSP", "CTL1", "P", "2.5.1", "UNICODE UTF-8"]
    assert seg(msg, "MSH").field(7).value == "20260301123005+0000"
    assert comps(msg, "PID", 3, k=5) == ["MRN-77", "", "", "RIVERSIDE", "MR"]
    assert comps(msg, "OBR", 3, k=2) == ["FL-1", "SUNLAB"]
    assert comps(msg, "OBR", 4, k=3) == ["24323-8", "CMP", "LN"]
    assert seg(msg, "OBR").field(7).value == "20240312081500-0400"
    assert seg(msg, "OBR").field(25).value == "F"
    # glucose: NM with UCUM units, range, interpretation mapped back to v2 table 0078
    assert [seg(msg, "OBX", 1).field(n).value for n in (1, 2, 5, 7, 8, 11, 14)] == \
        ["1", "NM", "112", "70-99", "H", "F", "20240312081500-0400"]
    assert comps(msg, "OBX", 6, k=3) == ["mg/dL", "mg/dL", "UCUM"]
    assert comps(msg, "OBX", 3, k=3) == ["2345-7", "Glucose", "LN"]
    assert seg(msg, "NTE").field(3).value == "fasting"
    assert comps(msg, "OBX", 5, occ=2, k=3) == ["371244009", "Yellow", "SCT"]
    assert seg(msg, "OBX", 2).field(2).value == "CWE"
    assert seg(msg, "OBX", 2).field(11).value == "P"
    assert seg(msg, "OBX", 3).field(2).value == "ST"
    assert "line one\\.br\\line two" in text
    # the panel (no value) and its member, from hasMember
    assert comps(msg, "OBX", 3, occ=4, k=1) == ["24356-8"]
    assert [seg(msg, "OBX", 5).field(n).value for n in (1, 2, 5)] == ["5", "NM", "7"]


def test_oru_needs_its_patient() -> None:
    report = {"resourceType": "DiagnosticReport", "id": "dr-x", "status": "final",
              "code": {"text": "x"}, "subject": {"reference": "Patient/elsewhere"}}
    with pytest.raises(OutboundError, match="needs its Patient in the Bundle"):
        to_v2(report, control_id="C1")


def test_oru_patient_from_the_subject_identifier() -> None:
    report = {"resourceType": "DiagnosticReport", "id": "dr-y", "status": "final",
              "code": {"text": "x"},
              "subject": {"reference": "Patient/p9", "identifier": {"system": OID, "value": "9"}}}
    out = to_v2(report, control_id="C1")
    msg = mappers.parse(out.message.decode())
    assert comps(msg, "PID", 3, k=4)[0] == "9"
    assert out.patient_key == "p9"


# --- ORU^R01 from a RiskAssessment: the NEWS2 bundle ---------------------------------------

def _news2(band: str = "medium") -> dict[str, Any]:
    vitals = {"resourceType": "Observation", "id": "rr", "status": "final",
              "code": {"coding": [{"system": LOINC, "code": "9279-1",
                                   "display": "Respiratory rate"}]},
              "subject": {"reference": "urn:uuid:pat-1"},
              "effectiveDateTime": "2026-03-01T12:00:00+01:00",
              "valueQuantity": {"value": 24, "unit": "/min",
                                "system": "http://unitsofmeasure.org", "code": "/min"}}
    score = {"resourceType": "Observation", "id": "score", "status": "final",
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1104051000000101",
                                  "display": "NEWS2 score"}]},
             "subject": {"reference": "urn:uuid:pat-1"},
             "effectiveDateTime": "2026-03-01T12:00:00+01:00", "valueInteger": 6}
    risk = {"resourceType": "RiskAssessment", "id": "ra", "status": "final",
            "subject": {"reference": "urn:uuid:pat-1"},
            "occurrenceDateTime": "2026-03-01T12:00:00+01:00",
            "basis": [{"reference": "urn:uuid:rr"}],
            "prediction": [{"qualitativeRisk": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/risk-probability",
                "code": band, "display": f"{band} risk"}]}}]}
    return bundle(PATIENT, risk, score, vitals)


def test_news2_bundle_becomes_an_oru_with_score_and_band() -> None:
    assert message_types_for(_news2()) == ["ORU^R01"]
    msg, text = render(_news2())
    assert ids(text) == ["MSH", "PID", "OBR", "OBX", "OBX", "OBX"]
    assert comps(msg, "OBR", 4, k=3) == ["225338004", "Risk assessment", "SCT"]
    assert seg(msg, "OBR").field(7).value == "20260301120000+0100"
    band = seg(msg, "OBX", 1)
    assert band.field(2).value == "CWE"
    assert comps(msg, "OBX", 5, occ=1, k=3) == ["medium", "medium risk", "L"]
    assert band.field(4).value == "1"
    score = seg(msg, "OBX", 2)
    assert [score.field(n).value for n in (1, 2, 5, 11)] == ["2", "NM", "6", "F"]
    assert comps(msg, "OBX", 3, occ=2, k=3) == ["1104051000000101", "NEWS2 score", "SCT"]
    assert comps(msg, "OBX", 6, occ=3, k=3) == ["/min", "/min", "UCUM"]
    # the gateway's own mapper reads it back: score and band as Observations
    result = mappers.convert(text)
    observations = [e["resource"] for e in result.bundle["entry"]
                    if e["resource"]["resourceType"] == "Observation"]
    assert observations[1]["valueQuantity"] == {"value": 6}
    assert observations[0]["valueCodeableConcept"]["coding"][0]["code"] == "medium"


def test_risk_prediction_probability_and_code() -> None:
    risk = {"resourceType": "RiskAssessment", "id": "ra2", "status": "preliminary",
            "subject": {"reference": "urn:uuid:pat-1"},
            "code": {"coding": [{"system": LOINC, "code": "75618-9", "display": "Risk"}]},
            "prediction": [{"outcome": {"text": "deterioration"}, "probabilityDecimal": 0.25},
                           {"outcome": {"coding": [{"code": "death"}]}}]}
    msg, text = render(bundle(PATIENT, risk))
    assert ids(text) == ["MSH", "PID", "OBR", "OBX", "OBX"]
    assert comps(msg, "OBR", 4, k=1) == ["75618-9"]
    assert seg(msg, "OBR").field(25).value == "P"
    assert [seg(msg, "OBX", 1).field(n).value for n in (2, 4, 5)] == ["NM", "1", "0.25"]
    assert comps(msg, "OBX", 3, occ=1, k=2) == ["", "deterioration"]
    assert [seg(msg, "OBX", 2).field(n).value for n in (2, 4, 5)] == ["CWE", "2", "death"]
    assert comps(msg, "OBX", 3, occ=2, k=1) == ["75618-9"]


def test_lone_observation_gives_an_oru() -> None:
    obs = {"resourceType": "Observation", "id": "o1", "status": "final",
           "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
           "subject": {"reference": "Patient/pat-1"}, "valueQuantity": {"value": 72.0}}
    assert message_types_for(bundle(PATIENT, obs)) == ["ORU^R01"]
    msg, text = render(bundle(PATIENT, obs))
    assert ids(text) == ["MSH", "PID", "OBR", "OBX"]
    assert comps(msg, "OBR", 4, k=1) == ["8867-4"]
    assert seg(msg, "OBX").field(5).value == "72.0"


# --- ADT -----------------------------------------------------------------------------------

def test_adt_a08_from_a_patient() -> None:
    assert message_types_for(PATIENT) == ["ADT^A08"]
    msg, text = render(PATIENT)
    assert ids(text) == ["MSH", "EVN", "PID", "PV1"]
    assert comps(msg, "MSH", 9, k=3) == ["ADT", "A08", "ADT_A01"]
    assert seg(msg, "EVN").field(2).value == "20260301123005+0000"
    assert reps(msg, "PID", 3) == ["MRN-77^^^RIVERSIDE&2.16.840.1.113883.3.7777.1&ISO^MR",
                                   "AC-1^^^BILLING"]
    assert comps(msg, "PID", 5, k=7) == ["Quinn", "Harriet", "May", "", "Ms.", "", "L"]
    assert [seg(msg, "PID").field(n).value for n in (7, 8, 16, 30)] == \
        ["19620304", "F", "M", "N"]
    assert comps(msg, "PID", 11, k=7) == ["17 Larch Road", "Flat 2", "Springfield", "IL",
                                          "62704", "USA", "H"]
    assert reps(msg, "PID", 13) == ["+1 217 5550199^PRN^PH", "^NET^Internet^hq@example.org"]
    assert reps(msg, "PID", 14) == ["+1 217 5550100^WPN^PH"]
    assert comps(msg, "PV1", 2, k=1) == ["N"]


def test_adt_a31_on_request_and_pv1_from_an_encounter() -> None:
    encounter = {"resourceType": "Encounter", "id": "enc", "status": "in-progress",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                           "code": "IMP"},
                 "identifier": [{"system": "urn:id:H", "value": "V1",
                                 "type": {"coding": [{"code": "VN"}]}}]}
    msg, _ = render(bundle(PATIENT, encounter), message_type="ADT^A31")
    assert comps(msg, "MSH", 9, k=3) == ["ADT", "A31", "ADT_A05"]
    assert seg(msg, "PV1").field(2).value == "I"
    assert comps(msg, "PV1", 19, k=5) == ["V1", "", "", "H", "VN"]
    with pytest.raises(OutboundError, match="cannot render ADT\\^A99"):
        to_v2(PATIENT, control_id="C", message_type="ADT^A99")


def test_deceased_and_versions() -> None:
    dead = {**PATIENT, "deceasedDateTime": "2025-01-02T03:04:05Z"}
    del dead["deceasedBoolean"]
    msg, _ = render(dead, version="2.3")
    assert comps(msg, "MSH", 9, k=3) == ["ADT", "A08", ""]  # no structure id before 2.3.1
    assert seg(msg, "MSH").field(18).value == ""
    assert [seg(msg, "PID").field(n).value for n in (29, 30)] == ["20250102030405+0000", "Y"]
    msg, _ = render(PATIENT, version="2.3.1")
    assert comps(msg, "MSH", 9, k=3)[2] == "ADT_A01"
    with pytest.raises(OutboundError, match=r"2\.9"):
        to_v2(PATIENT, control_id="C", version="2.9")


# --- VXU, MDM, SIU -------------------------------------------------------------------------

IMMUNIZATION: dict[str, Any] = {
    "resourceType": "Immunization", "id": "imm", "status": "completed",
    "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "08",
                                "display": "Hep B"}]},
    "patient": {"reference": "urn:uuid:pat-1"},
    "occurrenceDateTime": "2024-07-02T09:15:00-04:00", "primarySource": True,
    "lotNumber": "HB2024A17", "expirationDate": "2025-09-30",
    "manufacturer": {"display": "Merck"},
    "doseQuantity": {"value": 0.5, "unit": "milliliter",
                     "system": "http://unitsofmeasure.org", "code": "mL"},
    "route": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0162",
                          "code": "IM"}]},
    "site": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0163",
                         "code": "LT"}]},
}


@pytest.mark.parametrize(("status", "rxa20", "rxa21"), [
    ("completed", "CP", "A"), ("not-done", "RE", "A"), ("entered-in-error", "CP", "D")])
def test_vxu_from_an_immunization(status: str, rxa20: str, rxa21: str) -> None:
    msg, text = render(bundle(PATIENT, {**IMMUNIZATION, "status": status}))
    assert ids(text) == ["MSH", "PID", "ORC", "RXA", "RXR"]
    assert comps(msg, "MSH", 9, k=3) == ["VXU", "V04", "VXU_V04"]
    rxa = seg(msg, "RXA")
    assert [rxa.field(n).value for n in (3, 6, 15, 16, 20, 21)] == \
        ["20240702091500-0400", "0.5", "HB2024A17", "20250930", rxa20, rxa21]
    assert comps(msg, "RXA", 5, k=3) == ["08", "Hep B", "CVX"]
    assert comps(msg, "RXA", 7, k=3) == ["mL", "milliliter", "UCUM"]
    assert comps(msg, "RXA", 9, k=3) == ["00", "", "NIP001"]
    assert comps(msg, "RXR", 1, k=3) == ["IM", "", "HL70162"]
    assert comps(msg, "RXR", 2, k=3) == ["LT", "", "HL70163"]


def test_mdm_from_a_text_document() -> None:
    text_body = "Seen today.\nBP 128/82 | stable"
    doc = {"resourceType": "DocumentReference", "id": "doc", "status": "current",
           "docStatus": "final",
           "masterIdentifier": {"system": "urn:id:LAKEDOC", "value": "DOC-1"},
           "type": {"coding": [{"system": LOINC, "code": "11506-3", "display": "Progress note"}]},
           "subject": {"reference": "urn:uuid:pat-1"}, "date": "2024-06-17T14:35:00-05:00",
           "author": [{"display": "Dr. Anna Bergstrom",
                       "identifier": {"system": "urn:oid:1.2.3", "value": "2207"}}],
           "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                       "data": base64.b64encode(text_body.encode()).decode()}}]}
    msg, text = render(bundle(PATIENT, doc), version="2.6")
    assert ids(text) == ["MSH", "EVN", "PID", "PV1", "TXA", "OBX"]
    assert comps(msg, "MSH", 9, k=3) == ["MDM", "T02", "MDM_T02"]
    txa = seg(msg, "TXA")
    assert [txa.field(n).value for n in (3, 4, 12, 17, 19)] == \
        ["TX", "20240617143500-0500", "DOC-1", "AU", "AV"]
    assert comps(msg, "TXA", 9, k=2) == ["2207", "Dr. Anna Bergstrom"]
    assert "2207^Dr. Anna Bergstrom^^^^^^^&1.2.3&ISO" in text
    assert seg(msg, "OBX").field(2).value == "TX"
    assert reps(msg, "OBX", 5) == ["Seen today.", "BP 128/82 | stable"]
    assert "|Seen today.~BP 128/82 \\F\\ stable|" in text


def test_mdm_from_a_pdf_document() -> None:
    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    doc = {"resourceType": "DocumentReference", "id": "doc2", "status": "current",
           "subject": {"reference": "urn:uuid:pat-1"},
           "type": {"text": "Discharge summary"},
           "content": [{"attachment": {"contentType": "application/pdf", "data": pdf}}]}
    msg, _ = render(bundle(PATIENT, doc))
    assert seg(msg, "OBX").field(2).value == "ED"
    assert comps(msg, "OBX", 5, k=5) == ["", "AP", "PDF", "Base64", pdf]
    assert seg(msg, "TXA").field(3).value == "AP"


def test_mdm_without_content_is_refused() -> None:
    doc = {"resourceType": "DocumentReference", "id": "doc3", "status": "current",
           "subject": {"reference": "urn:uuid:pat-1"}, "content": []}
    with pytest.raises(OutboundError, match="content"):
        to_v2(bundle(PATIENT, doc), control_id="C")


APPOINTMENT: dict[str, Any] = {
    "resourceType": "Appointment", "id": "apt", "status": "booked",
    "identifier": [{"system": "urn:id:SCHEDX", "value": "APT-1",
                    "type": {"coding": [{"code": "FILL"}]}}],
    "serviceType": [{"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]}],
    "start": "2024-06-17T14:00:00-05:00", "end": "2024-06-17T14:30:00-05:00",
    "minutesDuration": 30, "comment": "Bring your list",
    "participant": [{"actor": {"reference": "urn:uuid:pat-1"}, "status": "accepted"},
                    {"actor": {"reference": "Practitioner/doc"}, "status": "accepted",
                     "type": [{"text": "attending"}]},
                    {"actor": {"reference": "urn:uuid:loc"}, "status": "accepted"}],
}
PRACTITIONER = {"resourceType": "Practitioner", "id": "doc",
                "identifier": [{"system": "urn:id:LAKEVIEW", "value": "2207"}],
                "name": [{"family": "Bergstrom", "given": ["Anna"], "prefix": ["Dr."]}]}
LOCATION = {"resourceType": "Location", "id": "loc", "name": "Room 204"}


@pytest.mark.parametrize(("changes", "event"), [
    ({}, "S12"), ({"status": "proposed"}, "S12"), ({"meta": {"versionId": "2"}}, "S14"),
    ({"status": "arrived"}, "S14"), ({"status": "cancelled"}, "S15")])
def test_siu_event_from_the_appointment(changes: dict[str, Any], event: str) -> None:
    res = bundle({**APPOINTMENT, **changes}, PATIENT, PRACTITIONER, LOCATION)
    assert message_types_for(res) == [f"SIU^{event}"]
    msg, text = render(res)
    assert comps(msg, "MSH", 9, k=3) == ["SIU", event, "SIU_S12"]
    assert ids(text) == ["MSH", "SCH", "NTE", "PID", "RGS", "AIS", "AIL", "AIP"]


def test_siu_fields() -> None:
    msg, _ = render(bundle(APPOINTMENT, PATIENT, PRACTITIONER, LOCATION))
    assert comps(msg, "SCH", 2, k=2) == ["APT-1", "SCHEDX"]
    assert comps(msg, "SCH", 11, k=5)[3:] == ["20240617140000-0500", "20240617143000-0500"]
    assert seg(msg, "SCH").field(25).value == "Booked"
    assert comps(msg, "AIS", 3, k=3) == ["99213", "", "CPT"]
    assert comps(msg, "AIL", 3, k=9)[8] == "Room 204"
    assert comps(msg, "AIP", 3, k=6) == ["2207", "Bergstrom", "Anna", "", "", "Dr."]
    assert seg(msg, "AIP").field(4).value == ""  # a text-only role: CWE-2 holds it
    assert comps(msg, "AIP", 4, k=2) == ["", "attending"]


# --- escaping, control ids, hl7apy ---------------------------------------------------------

def test_delimiters_in_a_name_survive_a_round_trip() -> None:
    nasty = {**PATIENT, "name": [{"family": "O|Br^ien~\\&Co", "given": ["A&B", "line\nbreak"]}]}
    msg, text = render(nasty)
    assert "O\\F\\Br\\S\\ien\\R\\\\E\\\\T\\Co" in text
    assert "\\X0A\\" in text  # not a text type: the line break as hex
    assert comps(msg, "PID", 5, k=3) == ["O|Br^ien~\\&Co", "A&B", "line\nbreak"]
    patient = mappers.convert(text).bundle["entry"][0]["resource"]
    assert patient["name"][0]["family"] == "O|Br^ien~\\&Co"
    assert patient["name"][0]["given"] == ["A&B", "line\nbreak"]


def test_control_id_for() -> None:
    first = control_id_for("2f6a1c9e-event-1")
    assert first == control_id_for("2f6a1c9e-event-1")
    assert re.fullmatch(r"[A-Z0-9]{20}", first)
    many = {control_id_for(f"event-{i}") for i in range(2000)}
    assert len(many) == 2000
    assert control_id_for("") != control_id_for(" ")


def test_message_types_for_what_cannot_be_rendered() -> None:
    assert message_types_for({"resourceType": "Organization", "id": "o"}) == []
    with pytest.raises(OutboundError, match="no outbound message for Organization"):
        to_v2({"resourceType": "Organization", "id": "o"}, control_id="C")
    with pytest.raises(OutboundError, match="control_id"):
        to_v2(PATIENT, control_id="X" * 21)


@pytest.mark.parametrize(("resource", "structure", "segments"), [
    (_report_bundle(), "ORU_R01", ["PID", "OBR", "OBX"]),
    (_news2(), "ORU_R01", ["PID", "OBR", "OBX"]),
    (PATIENT, "ADT_A01", ["EVN", "PID", "PV1"]),
    (bundle(PATIENT, IMMUNIZATION), "VXU_V04", ["PID", "ORC", "RXA", "RXR"]),
    (bundle(APPOINTMENT, PATIENT, PRACTITIONER, LOCATION), "SIU_S12",
     ["SCH", "PID", "RGS", "AIS", "AIL", "AIP"]),
])
def test_hl7apy_parses_the_output(resource: dict[str, Any], structure: str,
                                  segments: list[str]) -> None:
    text = to_v2(resource, control_id="C1", timestamp=STAMP).message.decode()
    parsed = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    assert parsed.name == structure
    found = {child.name for child in _walk(parsed)}
    assert set(segments) <= found


def _walk(element: Any) -> list[Any]:
    out = []
    for child in element.children:
        out.append(child)
        if len(child.name) > 3:  # a group
            out.extend(_walk(child))
    return out
