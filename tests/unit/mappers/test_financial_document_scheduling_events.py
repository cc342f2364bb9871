"""Scheduling (SIU), document (MDM), billing (BAR, DFT), referral (REF) and problem (PPR)
events: what each event does to the resource it maps to.

The goldens pin every element of each sample's Bundle; these tests name the behaviours that
matter to a receiver (a cancel cancels, a delete is entered-in-error, a charge has its
price) so that a change breaking one says which.
"""

from __future__ import annotations

from typing import Any

import pytest

from mappers import convert, supported_message_types
from tests.support import SAMPLES
from tests.unit.mappers.test_mapping_datatypes import one


def sample(name: str) -> str:
    return (SAMPLES / "messages" / f"{name}.hl7").read_bytes().decode()


def of_type(name: str, resource_type: str, text: str | None = None) -> list[dict[str, Any]]:
    bundle = convert(text if text is not None else sample(name)).bundle
    return [e["resource"] for e in bundle["entry"]
            if e["resource"]["resourceType"] == resource_type]


def single(name: str, resource_type: str, text: str | None = None) -> dict[str, Any]:
    found = of_type(name, resource_type, text)
    assert len(found) == 1, f"{len(found)} {resource_type} in {name}"
    return found[0]


EVENTS = [f"SIU^S{n}" for n in range(12, 27)] + \
    [f"MDM^T{n:02d}" for n in range(1, 12)] + \
    ["BAR^P01", "BAR^P02", "BAR^P05", "BAR^P06", "BAR^P12", "DFT^P03", "DFT^P11",
     "PPR^PC1", "PPR^PC2", "PPR^PC3", "REF^I12", "REF^I13", "REF^I14"]


@pytest.mark.parametrize("event", EVENTS)
def test_every_event_is_supported(event: str) -> None:
    assert event in supported_message_types()


# --- SIU: the Appointment state machine ---------------------------------------------------

@pytest.mark.parametrize(("name", "status"), [
    ("siu_s12", "booked"), ("siu_s13", "booked"), ("siu_s14", "booked"),
    ("siu_s15", "cancelled"), ("siu_s16", "cancelled"), ("siu_s17", "entered-in-error"),
    ("siu_s18", "booked"), ("siu_s19", "booked"), ("siu_s20", "booked"),
    ("siu_s21", "booked"), ("siu_s22", "booked"), ("siu_s25", "booked"),
    ("siu_s26", "noshow")])
def test_appointment_status_per_event(name: str, status: str) -> None:
    assert single(name, "Appointment")["status"] == status


def test_every_siu_event_updates_the_same_appointment() -> None:
    ids = {single(f"siu_s{n}", "Appointment")["id"]
           for n in (12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 25, 26)}
    assert len(ids) == 1


def test_the_event_outranks_a_stale_filler_status() -> None:
    # a cancel whose SCH-25 still says Booked is cancelled; a booking keeps SCH-25's state
    text = sample("siu_s15").replace("|Cancelled\r", "|Booked\r")
    assert single("", "Appointment", text)["status"] == "cancelled"
    pending = sample("siu_s12").replace("|Booked\r", "|Pending\r")
    assert single("", "Appointment", pending)["status"] == "pending"


def test_cancel_reason_only_on_a_cancel() -> None:
    assert single("siu_s15", "Appointment")["cancelationReason"]["coding"][0]["code"] == \
        "PATCANCEL"
    assert "cancelationReason" not in single("siu_s13", "Appointment")  # a reschedule reason


def test_reschedule_moves_the_appointment() -> None:
    assert single("siu_s13", "Appointment")["start"] == "2024-06-19T10:00:00-05:00"


def test_blocked_and_opened_time_are_slots_on_the_rooms_schedule() -> None:
    blocked, opened = single("siu_s23", "Slot"), single("siu_s24", "Slot")
    assert (blocked["status"], opened["status"]) == ("busy-unavailable", "free")
    assert blocked["id"] == opened["id"]  # S24 opens the time S23 blocked
    schedule = single("siu_s23", "Schedule")
    assert blocked["schedule"] == {"reference": f"Schedule/{schedule['id']}"}
    location = single("siu_s23", "Location")
    assert schedule["actor"] == [{"reference": f"Location/{location['id']}"}]
    assert of_type("siu_s23", "Appointment") == [] and of_type("siu_s23", "Patient") == []


def test_a_general_resource_is_a_named_participant() -> None:
    actors = [p["actor"] for p in single("siu_s18", "Appointment")["participant"]]
    assert {"display": "ECG cart 3"} in actors


def test_a_removed_resource_declines_and_the_rest_stay() -> None:
    def statuses(name: str, text: str | None = None) -> dict[str, str]:
        appointment = single(name, "Appointment", text)
        return {p["actor"].get("reference", p["actor"].get("display", "")).split("/")[0]:
                p["status"] for p in appointment["participant"]}

    assert statuses("siu_s20") == {"Patient": "accepted", "Location": "accepted",
                                   "Practitioner": "accepted", "ECG cart 3": "declined"}
    assert statuses("siu_s22")["Practitioner"] == "declined"
    room_removed = sample("siu_s19").replace("AIL|1|U|", "AIL|1|D|")
    assert statuses("", room_removed)["Location"] == "declined"
    assert set(statuses("siu_s19").values()) == {"accepted"}


# --- MDM: documents -----------------------------------------------------------------------

def test_notification_without_content_names_the_document() -> None:
    doc = single("mdm_t01", "DocumentReference")
    assert doc["content"] == [{"attachment": {"title": "Discharge summary"}}]
    assert doc["docStatus"] == "preliminary"  # dictated


def test_content_events_carry_the_text() -> None:
    for name in ("mdm_t02", "mdm_t04", "mdm_t06", "mdm_t08", "mdm_t10", "mdm_t02_v23"):
        attachment = single(name, "DocumentReference")["content"][0]["attachment"]
        assert attachment["contentType"].startswith("text/plain") and attachment["data"]


def test_t11_cancels_the_document_t01_announced() -> None:
    announced, cancelled = (single(n, "DocumentReference") for n in ("mdm_t01", "mdm_t11"))
    assert cancelled["id"] == announced["id"]
    assert cancelled["status"] == "entered-in-error"
    # even when TXA-19 still says available
    text = sample("mdm_t11").replace("|CA|", "|AV|")
    assert single("", "DocumentReference", text)["status"] == "entered-in-error"
    assert single("mdm_t03", "DocumentReference")["status"] == "current"


@pytest.mark.parametrize(("name", "code"), [
    ("mdm_t05", "appends"), ("mdm_t06", "appends"), ("mdm_t09", "replaces"),
    ("mdm_t10", "replaces")])
def test_addendum_and_replacement_point_at_their_parent(name: str, code: str) -> None:
    doc = single(name, "DocumentReference")
    assert doc["relatesTo"] == [{"code": code, "target": {"identifier": {
        "system": "urn:id:LAKEDOC", "value": "DS-2024-40417"}}}]
    assert "relatesTo" not in single("mdm_t04", "DocumentReference")


def test_title_attachment_datatype() -> None:
    assert one("title_attachment", "Discharge summary") == {"title": "Discharge summary"}
    assert one("title_attachment", "Lab \\T\\ imaging") == {"title": "Lab & imaging"}


# --- BAR, DFT: accounts and charges -------------------------------------------------------

@pytest.mark.parametrize(("name", "status"), [
    ("bar_p01", "active"), ("bar_p01_v23", "active"), ("bar_p05", "active"),
    ("bar_p06", "inactive"), ("dft_p03", "active")])
def test_account_status_per_event(name: str, status: str) -> None:
    assert single(name, "Account")["status"] == status


def test_every_billing_event_lands_on_one_account() -> None:
    ids = {single(n, "Account")["id"] for n in ("bar_p01", "bar_p05", "bar_p06", "dft_p03",
                                                "dft_p11")}
    assert of_type("bar_p02", "Account")[0]["id"] in ids
    assert len(ids) == 1


def test_account_names_its_patient_and_coverage() -> None:
    account = single("bar_p01", "Account")
    patient, coverage = single("bar_p01", "Patient"), single("bar_p01", "Coverage")
    assert account["identifier"][0]["value"] == "ACC-7713021"
    assert account["subject"] == [{"reference": f"Patient/{patient['id']}"}]
    assert account["coverage"] == [{"coverage": {"reference": f"Coverage/{coverage['id']}"}}]


def test_a_purge_closes_each_patients_account() -> None:
    patients = {p["identifier"][0]["value"]: p["id"] for p in of_type("bar_p02", "Patient")}
    accounts = {a["identifier"][0]["value"]: a for a in of_type("bar_p02", "Account")}
    visits = {e["identifier"][0]["value"]: e for e in of_type("bar_p02", "Encounter")}
    assert visits["LV-A6601"]["account"] == [
        {"reference": f"Account/{accounts['ACC-6602219']['id']}"}]
    assert visits["LV-I20931"]["account"] == [
        {"reference": f"Account/{accounts['ACC-7713021']['id']}"}]
    assert set(accounts) == {"ACC-7713021", "ACC-6602219"}
    assert {a["status"] for a in accounts.values()} == {"inactive"}
    assert accounts["ACC-6602219"]["subject"] == [
        {"reference": f"Patient/{patients['LK660012']}"}]
    assert accounts["ACC-7713021"]["subject"] == [
        {"reference": f"Patient/{patients['LK551203']}"}]


def test_each_visit_of_a_p01_keeps_its_own_diagnoses() -> None:
    second = ("PV1|1|O|CLIN2^^^LAKEVIEW||||||||||||||||LV-A9902^^^LAKEVIEW^VN\r"
              "DG1|1|I10|R05.9^Cough, unspecified^I10||20240801|W\r")
    text = sample("bar_p01") + second
    visits = {e["identifier"][0]["value"]: e["id"] for e in of_type("", "Encounter", text)}
    on = {c["code"]["coding"][0]["code"]: c["encounter"]["reference"]
          for c in of_type("", "Condition", text)}
    assert on == {"J18.9": f"Encounter/{visits['LV-I20931']}",
                  "E11.9": f"Encounter/{visits['LV-I20931']}",
                  "R05.9": f"Encounter/{visits['LV-A9902']}"}
    assert len(of_type("", "Account", text)) == 1


def test_no_account_number_no_account() -> None:
    text = sample("bar_p01").replace("ACC-7713021^^^LAKEVIEW^AN", "")
    assert of_type("", "Account", text) == []


def test_p12_updates_diagnoses_and_procedures_not_the_account() -> None:
    assert of_type("bar_p12", "Account") == []
    codes = [c["code"]["coding"][0]["code"] for c in of_type("bar_p12", "Condition")]
    assert codes == ["J13", "J18.9", "E11.9"]
    assert single("bar_p12", "Procedure")["status"] == "completed"


def test_p12_withdraws_a_diagnosis_with_action_code_d() -> None:
    admitted = {c["code"]["coding"][0]["code"]: c for c in of_type("bar_p01", "Condition")}
    updated = {c["code"]["coding"][0]["code"]: c for c in of_type("bar_p12", "Condition")}
    assert updated["J18.9"]["id"] == admitted["J18.9"]["id"]  # the P01 diagnosis itself
    assert updated["J18.9"]["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "verificationStatus" not in updated["J13"]  # action A: added


def test_a_procedure_with_action_code_d_is_entered_in_error() -> None:
    pr1 = next(s for s in sample("bar_p12").split("\r") if s.startswith("PR1"))
    fields = pr1.split("|") + [""] * 20
    fields[20] = "D"
    text = sample("bar_p12").replace(pr1, "|".join(fields[:21]))
    assert single("", "Procedure", text)["status"] == "entered-in-error"


def test_charge_item_fields() -> None:
    first, drug, credit = of_type("dft_p03", "ChargeItem")
    account, encounter = single("dft_p03", "Account"), single("dft_p03", "Encounter")
    assert first["status"] == "billable"
    assert first["code"]["coding"][0]["code"] == "71046"
    assert first["identifier"] == [{"value": "TX-20240628-0001"}]
    assert first["quantity"] == {"value": 1}
    assert first["priceOverride"] == {"value": 186.0, "currency": "USD"}
    assert first["occurrencePeriod"] == {"start": "2024-06-28T10:30:00-05:00",
                                         "end": "2024-06-28T10:45:00-05:00"}
    assert first["enteredDate"] == "2024-06-29"
    assert first["account"] == [{"reference": f"Account/{account['id']}"}]
    assert first["context"] == {"reference": f"Encounter/{encounter['id']}"}
    assert first["reason"][0]["coding"][0]["code"] == "J18.9"
    assert first["performer"][0]["actor"]["display"] == "Dr. Wei Chen"
    assert drug["note"] == [{"text": "1 g IV daily, day 1 of 3."}]
    assert drug["productCodeableConcept"]["coding"][0]["code"] == "0409-7332-01"
    assert credit["priceOverride"]["value"] == -95.0
    assert "service" not in first  # a PR1 is matched by position: not linked (see the spec)


def test_charge_item_v23_time_and_plain_amount() -> None:
    charge = single("dft_p03_v23", "ChargeItem")
    assert charge["occurrenceDateTime"] == "2023-03-14T08:15:00+00:00"
    assert charge["priceOverride"] == {"value": 142.0}


def test_a_payment_is_not_billable() -> None:
    text = sample("dft_p11").replace("|CG|", "|PY|")
    assert single("", "ChargeItem", text)["status"] == "not-billable"


def test_a_replayed_charge_keeps_its_id() -> None:
    first = of_type("dft_p03", "ChargeItem")
    replay = of_type("", "ChargeItem", sample("dft_p03").replace("LV240702160000403", "X1"))
    assert [c["id"] for c in replay] == [c["id"] for c in first]
    assert len({c["id"] for c in first}) == 3


# --- PPR: the problem list ----------------------------------------------------------------

def test_pc1_adds_active_problems_with_their_notes() -> None:
    htn, hld = of_type("ppr_pc1", "Condition")
    assert htn["category"][0]["coding"][0]["code"] == "problem-list-item"
    assert htn["clinicalStatus"]["coding"] == [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
    assert htn["code"]["coding"][0]["code"] == "I10"
    assert htn["onsetDateTime"] == "2023" and htn["recordedDate"] == "2024-06-17"
    assert htn["note"] == [{"text": "Home BP readings averaging 148/92."}]
    assert "note" not in hld and "verificationStatus" not in htn


def test_pc2_resolves_the_same_problem() -> None:
    added = of_type("ppr_pc1", "Condition")[0]
    updated = single("ppr_pc2", "Condition")
    assert updated["id"] == added["id"]
    assert updated["clinicalStatus"]["coding"][0]["code"] == "resolved"
    assert updated["abatementDateTime"] == "2024-10-01"


def test_a_resolution_date_outranks_an_active_life_cycle_status() -> None:
    # R4 con-4: an abated condition is not active
    text = sample("ppr_pc2").replace("R^Resolved^LOCAL", "A^Active^LOCAL")
    assert single("", "Condition", text)["clinicalStatus"]["coding"][0]["code"] == "resolved"


def test_pc3_deletes_the_problem_pc1_added() -> None:
    added = of_type("ppr_pc1", "Condition")[1]
    deleted = single("ppr_pc3", "Condition")
    assert deleted["id"] == added["id"]
    assert deleted["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "clinicalStatus" not in deleted  # R4 con-5
    assert deleted["note"] == [{"text": "Entered on the wrong patient's list."}]


# --- REF: referrals -----------------------------------------------------------------------

def test_referral_names_who_refers_to_whom_and_why() -> None:
    referral = single("ref_i12", "ServiceRequest")
    by_name = {p["name"][0]["family"]: p["id"] for p in of_type("ref_i12", "Practitioner")}
    assert referral["status"] == "active" and referral["intent"] == "order"
    assert referral["requester"] == {"reference": f"Practitioner/{by_name['Bergstrom']}"}
    assert referral["performer"] == [{"reference": f"Practitioner/{by_name['Haugen']}"}]
    assert referral["category"][0]["coding"][0]["code"] == "3457005"
    assert referral["priority"] == "routine"
    assert referral["occurrencePeriod"] == {"start": "2024-07-08", "end": "2025-01-08"}
    conditions = {f"Condition/{c['id']}" for c in of_type("ref_i12", "Condition")}
    assert {r["reference"] for r in referral["reasonReference"]} == conditions
    support = [r["reference"].split("/")[0] for r in referral["supportingInfo"]]
    assert support == ["Procedure", "AllergyIntolerance", "Observation", "Observation"]
    coverage = single("ref_i12", "Coverage")
    assert referral["insurance"] == [{"reference": f"Coverage/{coverage['id']}"}]


def test_i14_revokes_the_referral_i12_made() -> None:
    made, cancelled = single("ref_i12", "ServiceRequest"), single("ref_i14", "ServiceRequest")
    assert cancelled["id"] == made["id"] and cancelled["status"] == "revoked"
    # even when RF1-1 still says accepted
    text = sample("ref_i14").replace("R^Rejected^HL70283", "A^Accepted^HL70283")
    assert single("", "ServiceRequest", text)["status"] == "revoked"


def test_a_provider_without_a_role_is_neither_requester_nor_performer() -> None:
    text = sample("ref_i14").replace("RT^Referred to Provider^HL70286", "CP^Consulting^HL70286")
    referral = single("", "ServiceRequest", text)
    assert "performer" not in referral and "requester" in referral
