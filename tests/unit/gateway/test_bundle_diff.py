"""gateway.bundle_diff: which elements of which resources differ between two Bundles."""

from __future__ import annotations

import copy
from typing import Any

from gateway.bundle_diff import Change, diff_bundles, element_of


def bundle(*resources: dict[str, Any], **head: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "message", **head,
            "entry": [{"fullUrl": f"urn:uuid:{r.get('id', i)}", "resource": r}
                      for i, r in enumerate(resources)]}


PATIENT: dict[str, Any] = {"resourceType": "Patient", "id": "p1",
           "name": [{"family": "Doe", "given": ["Jane", "Q"]}],
           "identifier": [{"system": "urn:mrn", "value": "123"}]}
ENCOUNTER: dict[str, Any] = {"resourceType": "Encounter", "id": "e1", "status": "in-progress",
             "class": {"code": "IMP"}}


def test_identical_bundles_have_no_changes() -> None:
    a = bundle(PATIENT, ENCOUNTER, timestamp="2026-01-01T00:00:00Z")
    assert diff_bundles(a, copy.deepcopy(a)) == []


def test_a_changed_leaf_is_named_by_resource_id_and_path() -> None:
    after = copy.deepcopy(PATIENT)
    after["name"][0]["family"] = "Smith"
    changes = diff_bundles(bundle(PATIENT), bundle(after))
    assert changes == [Change("Patient/p1.name[0].family", "changed", "Doe", "Smith")]
    assert element_of(changes[0].path) == "Patient.name.family"


def test_entries_are_matched_by_id_not_position() -> None:
    changes = diff_bundles(bundle(PATIENT, ENCOUNTER), bundle(ENCOUNTER, PATIENT))
    assert changes == []


def test_added_and_removed_resources_and_elements() -> None:
    after = copy.deepcopy(PATIENT)
    del after["identifier"]
    after["gender"] = "female"
    after["name"][0]["given"].append("R")
    obs = {"resourceType": "Observation", "id": "o1", "status": "final"}
    changes = diff_bundles(bundle(PATIENT, ENCOUNTER), bundle(after, obs))
    got = {(c.path, c.kind) for c in changes}
    assert got == {("Patient/p1.identifier", "removed"), ("Patient/p1.gender", "added"),
                   ("Patient/p1.name[0].given[2]", "added"), ("Encounter/e1", "removed"),
                   ("Observation/o1", "added")}
    removed = next(c for c in changes if c.path == "Encounter/e1")
    assert removed.before == ENCOUNTER and removed.after is None


def test_bundle_head_and_type_changes() -> None:
    changes = diff_bundles(bundle(PATIENT, timestamp="a"), bundle(PATIENT, timestamp="b"))
    assert changes == [Change("Bundle.timestamp", "changed", "a", "b")]
    # a number that became a string of the same digits is a change
    a = {**PATIENT, "multipleBirthInteger": 1}
    b = {**PATIENT, "multipleBirthInteger": "1"}
    assert [c.path for c in diff_bundles(bundle(a), bundle(b))] == [
        "Patient/p1.multipleBirthInteger"]


def test_entries_without_ids_fall_back_to_full_url_then_position() -> None:
    anon = {"resourceType": "Provenance", "recorded": "x"}
    a: dict[str, Any] = {"resourceType": "Bundle",
                         "entry": [{"fullUrl": "urn:uuid:9", "resource": anon},
                                   {"resource": {"resourceType": "Basic"}}]}
    b = copy.deepcopy(a)
    b["entry"][0]["resource"]["recorded"] = "y"
    assert [c.path for c in diff_bundles(a, b)] == ["Provenance/urn:uuid:9.recorded"]
    assert element_of("Provenance/urn:uuid:9.recorded") == "Provenance.recorded"


def test_single_resources_are_compared_too() -> None:
    after = {**ENCOUNTER, "status": "finished"}
    assert diff_bundles(ENCOUNTER, after) == [
        Change("Encounter/e1.status", "changed", "in-progress", "finished")]
