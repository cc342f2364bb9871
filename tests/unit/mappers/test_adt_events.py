"""What the ADT events do to the record (docs/adt-events.md): swaps, merges, links, cancels,
bed status and allergy updates, read from the samples' Bundles."""

from __future__ import annotations

from typing import Any

import pytest

from mappers import convert, supported_message_types
from mappers.errors import SegmentSequenceError
from tests.support import sample_text


def _bundle(name: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in convert(sample_text(name)).bundle["entry"]]


def _of(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == kind]


def _ref(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _beds(encounter: dict[str, Any]) -> tuple[str, str]:
    """(the bed the patient is in, the bed the patient left)."""
    now = [loc["location"]["display"] for loc in encounter["location"] if "status" not in loc]
    left = [loc["location"]["display"] for loc in encounter["location"]
            if loc.get("status") == "completed"]
    assert len(now) == 1 and len(left) == 1
    return now[0], left[0]


def _message(event: str, structure: str, *segments: str) -> str:
    msh = (f"MSH|^~\\&|EPICADT|GOODHEALTH|HL7GW|CLOUDFHIR|20240320100000-0500||ADT^{event}^"
           f"{structure}|T{event}|P|2.5.1")
    return "\r".join([msh, "EVN||20240320100000-0500", *segments]) + "\r"


PID = "PID|1||4820017^^^GOODHEALTH&2.16.840.1.113883.3.9999.1&ISO^MR||Everyman^Adam||19800614|M"


def test_every_adt_event_of_the_coverage_list_is_supported() -> None:
    events = [*[f"A{n:02d}" for n in [*range(1, 18), *range(20, 32)]], "A37", "A38",
              *[f"A{n}" for n in range(39, 48)], "A50", "A51", "A60", "A61", "A62"]
    missing = [e for e in events if f"ADT^{e}" not in supported_message_types()]
    assert missing == []


def test_a17_swap_gives_each_patient_the_other_ones_bed() -> None:
    resources = _bundle("adt_a17")
    first, second = _of(resources, "Patient")
    enc1, enc2 = _of(resources, "Encounter")
    assert enc1["subject"]["reference"] == _ref(first)
    assert enc2["subject"]["reference"] == _ref(second)
    now1, left1 = _beds(enc1)
    now2, left2 = _beds(enc2)
    assert now1 == left2 and now2 == left1 and now1 != now2
    assert enc1["status"] == enc2["status"] == "in-progress"


def test_a24_links_the_two_patients_to_each_other_and_a37_unlinks_them() -> None:
    first, second = _of(_bundle("adt_a24"), "Patient")
    assert first["link"] == [{"other": {"reference": _ref(second)}, "type": "seealso"}]
    assert second["link"] == [{"other": {"reference": _ref(first)}, "type": "seealso"}]
    unlinked = _of(_bundle("adt_a37"), "Patient")
    assert [p["id"] for p in unlinked] == [first["id"], second["id"]]
    assert all("link" not in p for p in unlinked)  # the PUT drops the A24's link


@pytest.mark.parametrize("name", ["adt_a40", "adt_a40_v251", "adt_a39", "adt_a30", "adt_a46",
                                  "adt_a47"])
def test_merges_link_the_surviving_patient_and_retire_the_merged_one(name: str) -> None:
    patients = _of(_bundle(name), "Patient")
    half = len(patients) // 2
    surviving, merged = patients[:half], patients[half:]
    assert half >= 1 and len(patients) == 2 * half
    for alive, old in zip(surviving, merged, strict=True):  # each PID with its own MRG
        assert alive["link"] == [{"other": {"reference": _ref(old)}, "type": "replaces"}]
        assert old["link"] == [{"other": {"reference": _ref(alive)}, "type": "replaced-by"}]
        assert old["active"] is False and "active" not in alive


@pytest.mark.parametrize("name", ["adt_a43", "adt_a44", "adt_a45", "adt_a06", "adt_a41"])
def test_an_mrg_that_merges_no_patient_writes_no_link(name: str) -> None:
    # adt_a06's MRG-1 is the patient's own MRN: it used to link the Patient to itself
    patients = _of(_bundle(name), "Patient")
    assert len(patients) == 1 and "link" not in patients[0]


@pytest.mark.parametrize(("name", "status"), [
    ("adt_a11", "cancelled"),          # cancel admit
    ("adt_a12", "in-progress"),        # cancel transfer: the visit goes on
    ("adt_a13", "in-progress"),        # cancel discharge
    ("adt_a23", "entered-in-error"),   # delete a visit
    ("adt_a25", "in-progress"),        # cancel pending discharge
    ("adt_a26", "in-progress"),        # cancel pending transfer
    ("adt_a27", "cancelled"),          # cancel pending admit
    ("adt_a38", "cancelled"),          # cancel pre-admit
    ("adt_a21", "onleave"),
    ("adt_a22", "in-progress"),
    ("adt_a14", "planned"),
])
def test_cancel_and_leave_events_set_the_documented_encounter_status(name: str,
                                                                     status: str) -> None:
    (encounter,) = _of(_bundle(name), "Encounter")
    assert encounter["status"] == status


@pytest.mark.parametrize(("name", "old_visit"), [("adt_a42", "V20240115002"),
                                                 ("adt_a50", "PA20240226003")])
def test_visit_merge_and_number_change_retire_the_old_encounter(name: str,
                                                                old_visit: str) -> None:
    surviving, old = _of(_bundle(name), "Encounter")
    assert old["status"] == "entered-in-error"
    assert old["partOf"] == {"reference": _ref(surviving)}
    # the retired one is the resource a message with the old visit number wrote
    pv1 = f"PV1|1|I|||||||||||||||||{old_visit}^^^GOODHEALTH&2.16.840.1.113883.3.9999.3&ISO^VN"
    (earlier,) = _of([e["resource"] for e in convert(_message("A01", "ADT_A01", PID, pv1))
                      .bundle["entry"]], "Encounter")
    assert earlier["id"] == old["id"] != surviving["id"]


def test_a60_allergy_updates_and_deletes() -> None:
    resources = _bundle("adt_a60")
    added, updated, deleted = _of(resources, "AllergyIntolerance")
    active = {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
              "code": "active", "display": "Active"}
    assert added["clinicalStatus"]["coding"] == [active] == updated["clinicalStatus"]["coding"]
    assert added["criticality"] == "high" and added["category"] == ["medication"]
    assert updated["onsetString"] == "Childhood"
    # IAM-6 D: entered in error, and (FHIR ait-2) no clinical status
    assert "clinicalStatus" not in deleted
    assert deleted["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    patient = _of(resources, "Patient")[0]
    assert {r["patient"]["reference"] for r in (added, updated, deleted)} == {_ref(patient)}


def test_a60_updates_the_allergy_an_al1_wrote() -> None:
    al1 = "AL1|1|DA|70618^Penicillin^RXNORM|SV|Hives"
    iam = "IAM|1|DA|70618^Penicillin^RXNORM|MO|Rash|U"
    (from_al1,) = _of([e["resource"] for e in convert(_message("A01", "ADT_A01", PID, al1))
                       .bundle["entry"]], "AllergyIntolerance")
    (from_iam,) = _of([e["resource"] for e in convert(_message("A60", "ADT_A60", PID, iam))
                       .bundle["entry"]], "AllergyIntolerance")
    assert from_al1["id"] == from_iam["id"]
    assert from_iam["criticality"] == "low"


def test_a20_bed_status_is_a_location_and_no_patient() -> None:
    resources = _bundle("adt_a20")
    (bed,) = _of(resources, "Location")
    assert bed["operationalStatus"]["code"] == "H"  # housekeeping
    assert bed["physicalType"]["coding"][0]["code"] == "bd"
    assert not _of(resources, "Patient")
    (provenance,) = _of(resources, "Provenance")
    assert provenance["target"] == [{"reference": _ref(bed)}]


def test_a20_without_its_npu_is_refused() -> None:
    with pytest.raises(SegmentSequenceError, match="NPU"):
        convert(_message("A20", "ADT_A20"))


def test_a17_without_a_visit_is_refused() -> None:
    with pytest.raises(SegmentSequenceError, match="PV1"):
        convert(_message("A17", "ADT_A17", PID, PID.replace("4820017", "5530021")))


def test_a29_keeps_the_patient_inactive_and_person_events_make_no_visit() -> None:
    (patient,) = _of(_bundle("adt_a29"), "Patient")
    assert patient["active"] is False
    for name in ("adt_a28", "adt_a28_v23", "adt_a31", "adt_a31_v281"):
        resources = _bundle(name)
        assert not _of(resources, "Encounter"), name
        assert "active" not in _of(resources, "Patient")[0]


def test_a02_and_a15_locations() -> None:
    (a02,) = _of(_bundle("adt_a02"), "Encounter")
    assert _beds(a02) == ("5W, 512, A, MAIN, 5, GOODHEALTH", "4E, 401, B, MAIN, 4, GOODHEALTH")
    (a15,) = _of(_bundle("adt_a15"), "Encounter")
    assert [loc.get("status") for loc in a15["location"]] == [None, "reserved"]


def test_a_second_patient_group_is_its_own_patient_in_any_message() -> None:
    # Patient repeats for A17/A24/A37; an ORU with two PATIENT_RESULT groups used to file
    # the second patient's results under the first Patient
    lines = sample_text("oru_r01_10obx").split("\r")
    msh, group = lines[0], [line for line in lines[1:] if line]
    other = [line.replace("7712345", "7719999").replace("PL-10040", "PL-10041")
             .replace("FL-55530", "FL-55531").replace("V88121", "V88122") for line in group]
    resources = [e["resource"] for e in convert("\r".join([msh, *group, *other]) + "\r")
                 .bundle["entry"]]
    first, second = _of(resources, "Patient")
    subjects = [o["subject"]["reference"] for o in _of(resources, "Observation")]
    assert subjects == [_ref(first)] * 10 + [_ref(second)] * 10
    enc1, enc2 = _of(resources, "Encounter")
    assert (enc1["subject"]["reference"], enc2["subject"]["reference"]) == (_ref(first),
                                                                            _ref(second))


def test_a41_retires_the_merged_account_and_a44_moves_one() -> None:
    resources = _bundle("adt_a41")
    surviving, merged = _of(resources, "Account")
    assert (surviving["status"], merged["status"]) == ("active", "inactive")
    assert merged["identifier"][0]["value"] == "AC4820099"  # MRG-3
    # the merged one is the Account a message with that account number in PID-18 writes
    pid = PID + "||||||||||AC4820099^^^GOODHEALTH^AN"
    mrg = "MRG|4820017^^^GOODHEALTH&2.16.840.1.113883.3.9999.1&ISO^MR"
    (account,) = _of([e["resource"] for e in convert(_message("A44", "ADT_A43", pid, mrg))
                      .bundle["entry"]], "Account")
    assert account["id"] == merged["id"] != surviving["id"]
    moved = _bundle("adt_a44")
    assert _of(moved, "Account")[0]["subject"] == [{"reference": _ref(_of(moved, "Patient")[0])}]
