"""Wave-1 coverage: repeated segments, groups by position, ORU value types, A40 merge."""

from __future__ import annotations

from typing import Any

import pytest

from mappers import convert
from tests.support import MESSAGES, of_type


def text(name: str) -> str:
    return (MESSAGES / f"{name}.hl7").read_bytes().decode()


def ref(resource: dict[str, Any]) -> dict[str, str]:
    return {"reference": f"{resource['resourceType']}/{resource['id']}"}


@pytest.fixture(scope="module")
def oru() -> dict[str, Any]:
    return convert(text("oru_r01"), validate=True).bundle


def test_oru_obx_belong_to_the_obr_before_them(oru: dict[str, Any]) -> None:
    reports, observations = of_type(oru, "DiagnosticReport"), of_type(oru, "Observation")
    assert len(reports) == 2 and len(observations) == 12
    first = [o for o in observations if o["effectiveDateTime"].startswith("2024-03-12T08:15")]
    second = [o for o in observations if o["effectiveDateTime"].startswith("2024-03-12T08:20")]
    assert reports[0]["result"] == [ref(o) for o in first] and len(first) == 7
    assert reports[1]["result"] == [ref(o) for o in second] and len(second) == 5
    orders = of_type(oru, "ServiceRequest")
    assert [r["basedOn"] for r in reports] == [[ref(orders[0])], [ref(orders[1])]]
    specimens = of_type(oru, "Specimen")
    assert [r["specimen"] for r in reports] == [[ref(specimens[0])], [ref(specimens[1])]]
    assert [s["request"] for s in specimens] == [[ref(orders[0])], [ref(orders[1])]]


def test_oru_value_types(oru: dict[str, Any]) -> None:
    by_code = {o["code"]["coding"][0]["code"]: o for o in of_type(oru, "Observation")}
    assert by_code["2345-7"]["valueQuantity"] == {
        "value": 112, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}
    assert by_code["2160-0"]["valueQuantity"]["value"] == 0.94
    assert by_code["33914-3"]["valueQuantity"]["comparator"] == ">"  # SN >^60
    assert by_code["33914-3"]["valueQuantity"]["value"] == 60
    assert by_code["20454-5"]["valueRatio"] == {"numerator": {"value": 1},
                                                 "denominator": {"value": 128}}
    assert by_code["5811-5"]["valueQuantity"] == {"value": 1.015}
    assert by_code["11556-8"]["valueString"].startswith("Not performed")
    assert by_code["8251-1"]["valueString"] == "Urine microscopy to follow.\nSample stored at 4 C."
    assert by_code["48767-8"]["valueString"] == "Reviewed by\nM. Lindqvist"  # FT \.br\
    assert by_code["5778-6"]["valueCodeableConcept"]["coding"][0] == {
        "system": "http://snomed.info/sct", "code": "371244009", "display": "Yellow color"}
    assert by_code["33882-2"]["valueDateTime"] == "2024-03-12"
    assert "11502-2" not in by_code  # the ED value became a DocumentReference
    doc = of_type(oru, "DocumentReference")[0]
    assert doc["content"][0]["attachment"]["contentType"] == "application/pdf"
    assert doc["content"][0]["attachment"]["data"].startswith("JVBERi0")  # "%PDF-"


def test_oru_flags_status_notes_and_performers(oru: dict[str, Any]) -> None:
    by_code = {o["code"]["coding"][0]["code"]: o for o in of_type(oru, "Observation")}
    potassium = by_code["2823-3"]
    assert potassium["status"] == "corrected"  # OBX-11 C via 0085
    assert potassium["interpretation"][0]["coding"][-1] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
        "code": "HH", "display": "Critical high"}
    assert potassium["note"] == [{"text": "Critical value called to Dr. Okafor at 14:20."}]
    assert "note" not in by_code["2160-0"]  # a note belongs to the OBX right before it
    assert by_code["11556-8"]["status"] == "cancelled"  # X
    practitioners = of_type(oru, "Practitioner")
    assert len(practitioners) == 2  # OBR-16 twice (one resource) + OBX-16 once
    assert potassium["performer"] == [ref(practitioners[1])]
    orders = of_type(oru, "ServiceRequest")
    assert [o["requester"] for o in orders] == [ref(practitioners[0])] * 2
    assert orders[0]["note"] == [{"text": "Specimen received slightly hemolyzed."}]
    assert [o["status"] for o in orders] == ["completed", "active"]  # ORC-5 CM, A
    assert [r["status"] for r in of_type(oru, "DiagnosticReport")] == ["final", "preliminary"]


def test_oru_observation_ids_come_from_order_code_and_sub_id() -> None:
    original = {o["code"]["coding"][0]["code"]: o["id"]
                for o in of_type(convert(text("oru_r01")).bundle, "Observation")}
    replay = text("oru_r01").replace("RL240312143000017", "RL999")  # new MSH-10
    assert original == {o["code"]["coding"][0]["code"]: o["id"]
                        for o in of_type(convert(replay).bundle, "Observation")}
    other_order = text("oru_r01").replace("FL-55501", "FL-77777")
    moved = {o["code"]["coding"][0]["code"]: o["id"]
             for o in of_type(convert(other_order).bundle, "Observation")}
    assert moved["2345-7"] != original["2345-7"]  # in the first order: new id
    assert moved["5778-6"] == original["5778-6"]  # in the second order: same id


def test_oru_same_code_twice_in_one_order_gets_two_ids() -> None:
    message = text("oru_r01").replace("OBX|3|NM|2951-2^Sodium", "OBX|3|NM|2160-0^Sodium")
    bundle = convert(message, validate=True).bundle
    ids = [o["id"] for o in of_type(bundle, "Observation")]
    assert len(ids) == len(set(ids)) == 12


def test_adt_a03_maps_every_segment_kind() -> None:
    result = convert(text("adt_a03"), validate=True)
    b = result.bundle
    assert result.message_type == "ADT^A03" and result.issues == []
    assert of_type(b, "Encounter")[0]["status"] == "finished"
    people = of_type(b, "RelatedPerson")
    assert [p["relationship"][0]["coding"][0]["code"] for p in people] == ["CHD", "DAU"]
    assert people[0]["relationship"][0]["coding"][1]["code"] == "CHILD"  # 0063 -> RoleCode
    allergies = of_type(b, "AllergyIntolerance")
    assert [(a["category"], a["criticality"]) for a in allergies] == [
        (["medication"], "high"), (["food"], "low")]
    assert allergies[0]["reaction"][0]["manifestation"] == [{"text": "Hives"},
                                                            {"text": "Wheezing"}]
    assert [c["code"]["coding"][0]["code"] for c in of_type(b, "Condition")] == ["I50.9",
                                                                                 "E11.9"]
    assert of_type(b, "Procedure")[0]["performer"][0]["function"]["coding"][0]["code"] == \
        "304292004"  # SNOMED CT surgeon, as the IG maps PR1-11
    payer, coverage = of_type(b, "Organization")[0], of_type(b, "Coverage")[0]
    assert coverage["payor"] == [ref(payer)] and payer["name"].startswith("Centers for")
    assert coverage["beneficiary"] == ref(of_type(b, "Patient")[0])
    assert [o["code"]["coding"][0]["code"] for o in of_type(b, "Observation")] == [
        "8302-2", "29463-7"]
    patient = of_type(b, "Patient")[0]
    assert patient["generalPractitioner"][0]["display"] == "Dr. Ingrid Halvorsen MD"
    assert of_type(b, "Encounter")[0]["reasonCode"][0]["coding"][0]["code"] == "I50.9"  # PV2-3
    assert "ZPV-1" in result.unmapped and "ZPV-2" in result.unmapped  # Z-segment reported


def test_a40_links_survivor_and_merged_patient_both_ways() -> None:
    result = convert(text("adt_a40"), validate=True)  # LF separators and a BOM
    survivor, merged = of_type(result.bundle, "Patient")
    assert survivor["link"] == [{"other": ref(merged), "type": "replaces"}]
    assert merged["link"] == [{"other": ref(survivor), "type": "replaced-by"}]
    assert merged["active"] is False
    assert result.patient_key == survivor["id"]
    # the merged-away id is the id a message about that MRN would have given its Patient
    a01 = (MESSAGES.parent / "adt_a01.hl7").read_bytes().decode().replace("4820017", "4820555")
    assert of_type(convert(a01).bundle, "Patient")[0]["id"] == merged["id"]


@pytest.mark.parametrize("event", ["A02", "A05", "A06", "A07", "A11", "A13", "A28", "A31"])
def test_more_adt_events_convert(event: str) -> None:
    a01 = (MESSAGES.parent / "adt_a01.hl7").read_bytes().decode()
    result = convert(a01.replace("ADT^A01^ADT_A01", f"ADT^{event}^ADT_A01"), validate=True)
    assert result.message_type == f"ADT^{event}"
    expected = {"A02": "in-progress", "A05": "planned", "A06": "in-progress",
                "A07": "in-progress", "A11": "cancelled", "A13": "in-progress",
                "A28": None, "A31": None}[event]  # person-level: no visit (adt_a28.yaml)
    encounters = of_type(result.bundle, "Encounter")
    assert [e["status"] for e in encounters] == ([expected] if expected else [])


def test_orm_o01_order() -> None:
    result = convert(text("orm_o01"), validate=True)
    order = of_type(result.bundle, "ServiceRequest")[0]
    assert (order["status"], order["intent"], order["priority"]) == ("active", "order", "routine")
    assert order["code"]["coding"][0]["code"] == "71046"
    assert order["occurrenceDateTime"] == "2024-06-06T09:00:00-05:00"  # OBR-6 (v2.4)
    assert order["requester"] == ref(of_type(result.bundle, "Practitioner")[0])
    assert order["note"] == [{"text": "Rule out pneumonia."}]


def test_oml_o21_order_and_specimen() -> None:
    b = convert(text("oml_o21"), validate=True).bundle
    order, specimen = of_type(b, "ServiceRequest")[0], of_type(b, "Specimen")[0]
    assert order["priority"] == "stat"  # TQ1-9 (v2.5)
    assert specimen["request"] == [ref(order)]
    assert specimen["collection"]["method"]["coding"][0]["code"] == "28520004"


@pytest.mark.parametrize(("event", "status"), [("S12", "booked"), ("S13", "booked"),
                                               ("S14", "booked"), ("S15", "cancelled")])
def test_siu_appointment(event: str, status: str) -> None:
    message = text("siu_s12").replace("SIU^S12^SIU_S12", f"SIU^{event}^SIU_S12")
    if event == "S15":
        message = message.replace("|Booked", "|")  # status from the event when SCH-25 is empty
    b = convert(message, validate=True).bundle
    appointment = of_type(b, "Appointment")[0]
    assert appointment["status"] == status
    assert ("cancelationReason" in appointment) == (event == "S15")
    assert appointment["start"] == "2024-06-17T14:00:00-05:00"
    assert appointment["end"] == "2024-06-17T14:30:00-05:00"
    actors = [p["actor"] for p in appointment["participant"]]
    assert actors == [ref(of_type(b, t)[0]) for t in ("Patient", "Location", "Practitioner")]
    assert of_type(b, "Location")[0]["name"] == "Cardiology Clinic Room 204"


def test_siu_status_ignores_case() -> None:
    message = text("siu_s12").replace("|Booked", "|CANCELLED")
    assert of_type(convert(message).bundle, "Appointment")[0]["status"] == "cancelled"


def test_mdm_t02_document_holds_every_text_line() -> None:
    import base64

    b = convert(text("mdm_t02"), validate=True).bundle
    doc = of_type(b, "DocumentReference")[0]
    body = base64.b64decode(doc["content"][0]["attachment"]["data"]).decode()
    assert body.splitlines() == ["Patient seen for follow-up of hypertension.",
                                 "BP today 128/82.",
                                 "Continue lisinopril 10 mg daily; recheck in 3 months."]
    assert (doc["status"], doc["docStatus"]) == ("current", "final")
    assert doc["masterIdentifier"]["value"] == "DOC-2024-88121"


def test_vxu_v04_immunization() -> None:
    b = convert(text("vxu_v04"), validate=True).bundle
    shot = of_type(b, "Immunization")[0]
    assert shot["vaccineCode"]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/cvx", "code": "08",
        "display": "Hep B, adolescent or pediatric"}
    assert (shot["status"], shot["primarySource"], shot["lotNumber"]) == (
        "completed", True, "HB2024A17")
    assert shot["route"]["coding"][0]["code"] == "IM"  # RXR after the RXA
    assert shot["site"]["coding"][0]["code"] == "LT"
    assert shot["doseQuantity"]["value"] == 0.5
    refused = text("vxu_v04").replace("|CP|A", "|RE|A")
    assert of_type(convert(refused).bundle, "Immunization")[0]["status"] == "not-done"
    deleted = text("vxu_v04").replace("|CP|A", "|CP|D")
    assert of_type(convert(deleted).bundle, "Immunization")[0]["status"] == "entered-in-error"


def test_rde_o11_medication_request() -> None:
    b = convert(text("rde_o11"), validate=True).bundle
    rx = of_type(b, "MedicationRequest")[0]
    assert rx["medicationCodeableConcept"]["coding"][0]["code"] == "197361"
    dosage = rx["dosageInstruction"][0]
    assert dosage["route"]["coding"][0]["code"] == "PO"
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 5
    assert dosage["timing"]["repeat"]["boundsPeriod"]["start"] == "2024-06-12T20:00:00-05:00"
    assert rx["dispenseRequest"]["quantity"]["value"] == 30
    assert rx["dispenseRequest"]["numberOfRepeatsAllowed"] == 2
    assert rx["status"] == "active"  # ORC-5 IP
    assert rx["note"] == [{"text": "Check blood pressure in 2 weeks."}]
