"""Orders, results, pharmacy and immunizations: the links HL7 v2 makes by identifier.

Microbiology parent/child results (OBR-26/OBR-29), an ORC sent without its OBR, a refused
vaccine and its reason, a vaccine reaction, and dispenses/administrations that point at the
order they fill.
"""

from __future__ import annotations

from typing import Any

import pytest

from mappers import check, convert, supported_message_types
from tests.support import of_type, sample_text

NEW_EVENTS = ["OML^O33", "OML^O35", "OMG^O19", "OMP^O09", "ORU^R30", "OUL^R22", "OUL^R23",
              "OUL^R24", "RDE^O25", "RDS^O13", "RAS^O17", "RGV^O15"]
SAMPLE_OF = {"OML^O33": "oml_o33", "OML^O35": "oml_o35", "OMG^O19": "omg_o19",
             "OMP^O09": "omp_o09", "ORU^R30": "oru_r30", "OUL^R22": "oul_r22",
             "OUL^R23": "oul_r23", "OUL^R24": "oul_r24", "RDE^O25": "rde_o25",
             "RDS^O13": "rds_o13", "RAS^O17": "ras_o17", "RGV^O15": "rgv_o15"}


def ref(resource: dict[str, Any]) -> dict[str, str]:
    return {"reference": f"{resource['resourceType']}/{resource['id']}"}


def bundle(name: str, text: str | None = None) -> dict[str, Any]:
    return convert(text if text is not None else sample_text(name), validate=True).bundle


def by_code(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["code"]["coding"][0]["code"]: r for r in resources}


@pytest.mark.parametrize("event", NEW_EVENTS)
def test_each_new_event_is_supported_and_checked(event: str) -> None:
    assert event in supported_message_types()
    assert check(sample_text(SAMPLE_OF[event])).message_type.startswith(event)


# --- microbiology: parent result (organism) and child results (susceptibilities) ---------

@pytest.fixture(scope="module")
def micro() -> dict[str, Any]:
    return bundle("oru_r01_micro")


def test_susceptibilities_derive_from_the_organism_and_it_lists_them(
        micro: dict[str, Any]) -> None:
    obs = by_code(of_type(micro, "Observation"))
    organism = obs["600-7"]
    children = [obs[c] for c in ("18964-5", "19000-9", "18993-4")]
    assert organism["hasMember"] == [ref(c) for c in children]
    assert all(c["derivedFrom"] == [ref(organism)] for c in children)
    assert "derivedFrom" not in organism and "hasMember" not in obs["664-3"]


def test_child_order_and_report_are_based_on_the_parent_order(micro: dict[str, Any]) -> None:
    parent, child = of_type(micro, "ServiceRequest")
    assert child["basedOn"] == [ref(parent)] and "basedOn" not in parent
    first, second = of_type(micro, "DiagnosticReport")
    assert first["basedOn"] == [ref(parent)]
    assert second["basedOn"] == [ref(child), ref(parent)]
    # the child shares the parent's placer number: it still gets an id of its own
    assert parent["id"] != child["id"]


def _micro_text(obr29: str) -> str:
    text = sample_text("oru_r01_micro")
    return text.replace("|PL-20410&RIVERSIDE_EHR^FL-77120&MICROLAB", f"|{obr29}")


def test_the_parent_is_found_by_its_filler_number_alone() -> None:
    found = bundle("", _micro_text("^FL-77120&MICROLAB"))
    obs = by_code(of_type(found, "Observation"))
    assert obs["18964-5"]["derivedFrom"] == [ref(obs["600-7"])]


def test_without_obr29_the_parent_is_the_order_before_the_child() -> None:
    found = bundle("", _micro_text(""))
    obs = by_code(of_type(found, "Observation"))
    assert obs["18964-5"]["derivedFrom"] == [ref(obs["600-7"])]
    assert len(obs["600-7"]["hasMember"]) == 3


def test_a_parent_order_not_in_the_message_is_named_by_its_number() -> None:
    text = _micro_text("PL-19999&RIVERSIDE_EHR^FL-70000&MICROLAB")
    found = bundle("", text)
    child = of_type(found, "ServiceRequest")[1]
    assert child["basedOn"] == [{"type": "ServiceRequest", "identifier": {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                             "code": "PLAC"}]}, "value": "PL-19999"}}]
    obs = by_code(of_type(found, "Observation"))
    assert "derivedFrom" not in obs["18964-5"] and "hasMember" not in obs["600-7"]


def test_results_without_parent_links_get_none() -> None:
    found = bundle("oru_r01")
    for obs in of_type(found, "Observation"):
        assert "derivedFrom" not in obs and "hasMember" not in obs and "partOf" not in obs
    assert all(len(r["basedOn"]) == 1 for r in of_type(found, "DiagnosticReport"))


# --- an ORC without its OBR is the order ----------------------------------------------------

def test_an_orc_alone_is_a_service_request_that_lands_on_the_order_it_cancels() -> None:
    cancel = bundle("orm_o01_cancel")
    (order,) = of_type(cancel, "ServiceRequest")
    assert order["status"] == "revoked" and order["intent"] == "order"
    assert order["reasonCode"][0]["coding"][0]["code"] == "PATREQ"
    assert order["note"] == [{"text": "Patient declined imaging today; will reschedule."}]
    (placed,) = of_type(bundle("orm_o01"), "ServiceRequest")  # ORD-66120 as first ordered
    assert order["id"] == placed["id"]


def test_an_orc_with_its_obr_is_not_mapped_twice() -> None:
    for name in ("orm_o01", "oml_o21", "omg_o19", "oml_o33"):
        orders = of_type(bundle(name), "ServiceRequest")
        assert len(orders) == len({o["id"] for o in orders}) == \
            sample_text(name).count("\rOBR|")


def test_an_orc_alone_after_a_full_order_is_its_own_order() -> None:
    cancel = "ORC|DC|ORD-66099^LAKEEHR|||DC||||20240605101400-0500\r"
    text = sample_text("orm_o01").replace("\rORC|", "\r" + cancel + "ORC|", 1)  # before ORC+OBR
    first, second = of_type(bundle("", text), "ServiceRequest")
    assert first["code"]["coding"][0]["code"] == "71046" and first["status"] == "active"
    assert second["identifier"][0]["value"] == "ORD-66099" and second["status"] == "revoked"
    assert "code" not in second


def test_a_pharmacy_orm_is_a_medication_request_not_an_orc_only_order() -> None:
    found = bundle("orm_o01_rx")
    assert of_type(found, "ServiceRequest") == []
    (order,) = of_type(found, "MedicationRequest")
    assert order["intent"] == "original-order"
    assert order["dosageInstruction"][0]["timing"]["code"] == {"coding": [
        {"code": "Q6H"},  # a pattern instance: table 0335 lists only Q<integer>H
        {"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": "Q6H",
         "display": "Q6H"}]}


# --- specimen-centred lab -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["oul_r22", "oul_r23", "oul_r24"])
def test_oul_specimen_container_order_and_results(name: str) -> None:
    found = bundle(name)
    (specimen,) = of_type(found, "Specimen")
    (order,) = of_type(found, "ServiceRequest")
    (report,) = of_type(found, "DiagnosticReport")
    assert specimen["request"] == [ref(order)]
    assert specimen["container"][0]["identifier"][0]["value"].startswith(("CUP-", "TUBE-"))
    assert specimen["container"][0]["capacity"]["code"] == "mL"
    assert report["specimen"] == [ref(specimen)] and report["basedOn"] == [ref(order)]
    assert report["result"] == [ref(o) for o in of_type(found, "Observation")]
    assert order["status"] == "completed"  # ORC-5 CM, though the ORC follows the OBR


def test_an_oul_order_reads_the_orc_that_follows_its_obr() -> None:
    second = ("SPM|2|SP-2202&SUNLAB||119297000^Blood specimen^SCT|||||||||||||"
              "20240318121000-0400\r"
              "OBR|2|PL-10150^RIVERSIDE_EHR|FL-55720^SUNLAB|2160-0^Creatinine^LN|||"
              "20240318121000-0400|||||||||||||||20240318142500-0400||CH|P\r"
              "ORC|RE|PL-10150^RIVERSIDE_EHR|FL-55720^SUNLAB||A||||20240318115500-0400|||"
              "4410^Lindqvist^Maja^^^Dr.\r"
              "OBX|1|NM|2160-0^Creatinine^LN||1.1|mg/dL^mg/dL^UCUM||N|||P\r")
    found = bundle("", sample_text("oul_r22") + second)
    first, other = of_type(found, "ServiceRequest")
    assert (first["status"], first["authoredOn"]) == ("completed", "2024-03-18T11:50:00-04:00")
    # the ORC after the second OBR, not the first order's ORC before it
    assert (other["status"], other["authoredOn"]) == ("active", "2024-03-18T11:55:00-04:00")
    assert other["requester"]["display"] == "Dr. Maja Lindqvist"
    specimens = of_type(found, "Specimen")
    assert [s["request"] for s in specimens] == [[ref(first)], [ref(other)]]


def test_every_container_of_a_specimen_is_mapped() -> None:
    result = convert(sample_text("oml_o35"))  # SPM, SAC, ORC, OBR, SAC, ORC, OBR
    (specimen,) = of_type(result.bundle, "Specimen")
    tubes = specimen["container"]
    assert [t["identifier"][0]["value"] for t in tubes] == ["TUBE-88120", "TUBE-88121"]
    assert [t["capacity"]["value"] for t in tubes] == [5, 3.5]  # each SAC's own volume
    assert tubes[0]["additiveCodeableConcept"]["coding"][0]["code"] == "445295009"
    assert "additiveCodeableConcept" not in tubes[1]
    assert not [i for i in result.issues if i.code == "ignored-segment"]
    assert not [u for u in result.unmapped if u.startswith("SAC")]


def test_one_specimen_for_several_orders_requests_them_all() -> None:
    found = bundle("oml_o33")
    (specimen,) = of_type(found, "Specimen")
    assert specimen["request"] == [ref(o) for o in of_type(found, "ServiceRequest")]


def test_order_group_segments_are_mapped_not_dropped() -> None:
    result = convert(sample_text("oml_o21_v27"))
    kinds = [e["resource"]["resourceType"] for e in result.bundle["entry"]]
    for kind in ("RelatedPerson", "AllergyIntolerance", "Coverage", "Condition", "Observation"):
        assert kind in kinds
    assert not {"NK1-2", "AL1-3", "IN1-3", "DG1-3", "OBX-5", "NTE-3"} & set(result.unmapped)
    orders = of_type(result.bundle, "ServiceRequest")
    assert orders[0]["note"] == [{"text": "Patient fasting since midnight."}]


# --- pharmacy: dispense, administration and give point at the order ---------------------

@pytest.mark.parametrize(("name", "kind", "element"), [
    ("rds_o13", "MedicationDispense", "authorizingPrescription"),
    ("ras_o17", "MedicationAdministration", "request"),
    ("rgv_o15", "MedicationAdministration", "request"),
])
def test_pharmacy_events_refer_to_the_order(name: str, kind: str, element: str) -> None:
    found = bundle(name)
    (order,) = of_type(found, "MedicationRequest")
    (event,) = of_type(found, kind)
    assert event[element] in (ref(order), [ref(order)])
    assert event["subject"] == order["subject"]
    assert event["medicationCodeableConcept"] == order["medicationCodeableConcept"]


def test_the_order_keeps_its_id_from_order_to_dispense_to_administration() -> None:
    ordered = of_type(bundle("rde_o11"), "MedicationRequest")[0]
    dispensed = of_type(bundle("rds_o13"), "MedicationRequest")[0]
    assert ordered["id"] == dispensed["id"]  # RX-77102: one order, updated by each message
    placed = of_type(bundle("omp_o09"), "MedicationRequest")[0]
    given = of_type(bundle("ras_o17"), "MedicationRequest")[0]
    assert placed["id"] == given["id"] and placed["intent"] == "original-order"


def test_administration_status_period_and_give_status() -> None:
    (given,) = of_type(bundle("ras_o17"), "MedicationAdministration")
    assert given["status"] == "completed"
    assert given["effectivePeriod"] == {"start": "2024-06-23T06:00:00-05:00",
                                        "end": "2024-06-23T06:30:00-05:00"}
    refused = sample_text("ras_o17").replace("||CP|A|", "||RE|A|")
    assert of_type(bundle("", refused), "MedicationAdministration")[0]["status"] == "not-done"
    (to_give,) = of_type(bundle("rgv_o15"), "MedicationAdministration")
    assert to_give["status"] == "in-progress"
    assert to_give["effectiveDateTime"] == "2024-06-23T18:00:00-05:00"  # TQ1-7 of the give


# --- immunization: refusal and reaction ---------------------------------------------------

def test_a_refused_vaccine_is_not_done_with_its_reason() -> None:
    (shot,) = of_type(bundle("vxu_v04_refusal"), "Immunization")
    assert shot["status"] == "not-done"
    assert shot["statusReason"]["coding"][0]["code"] == "00"
    assert "doseQuantity" not in shot  # 999 without units: no amount was given


def test_a_reaction_observation_is_the_immunization_reaction() -> None:
    found = bundle("vxu_v04_reaction")
    (shot,) = of_type(found, "Immunization")
    reaction = by_code(of_type(found, "Observation"))["31044-1"]
    assert shot["reaction"] == [{"date": "2024-07-16T14:00:00-04:00", "detail": ref(reaction)}]
    assert reaction["valueCodeableConcept"]["coding"][0]["code"] == "VXC12"
    assert all(o["partOf"] == [ref(shot)] for o in of_type(found, "Observation"))  # IG VXU
    assert "reaction" not in of_type(bundle("vxu_v04"), "Immunization")[0]
