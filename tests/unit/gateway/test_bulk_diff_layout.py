"""The diff page's layout: every changed element's lines marked, on the right side."""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome

from gateway.bundle_diff import diff_bundles
from gateway.console.diffview import DiffResult, _layout
from gateway.console.export import hl7_text, outcome_line

BEFORE: dict[str, Any] = {
    "resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p1", "resource": {
            "resourceType": "Patient", "id": "p1", "gender": "male",
            "name": [{"family": "Everyman", "given": ["Adam"]}]}},
        {"fullUrl": "urn:uuid:e1", "resource": {"resourceType": "Encounter", "id": "e1",
                                                 "status": "finished"}}]}


def after() -> dict[str, Any]:
    changed: dict[str, Any] = json.loads(json.dumps(BEFORE))
    changed["entry"][0]["resource"]["gender"] = "female"
    changed["entry"][0]["resource"]["name"][0]["given"].append("Alan")
    del changed["entry"][1]
    return changed


def test_layout_is_the_json_itself() -> None:
    text = "\n".join(line for line, _ in _layout(BEFORE))
    assert json.loads(text) == BEFORE


def test_changed_added_and_removed_elements_are_marked_on_their_side() -> None:
    now = after()
    result = DiffResult(1, "ok", "", before=BEFORE, after=now,
                        changes=diff_bundles(BEFORE, now))
    left, right = result.lines()
    marked_left = {(x.text.strip(), x.mark) for x in left if x.mark}
    marked_right = {(x.text.strip(), x.mark) for x in right if x.mark}
    assert ('"gender": "male",', "changed") in marked_left
    assert ('"gender": "female",', "changed") in marked_right
    assert ('"Alan"', "added") in marked_right
    assert ('"status": "finished"', "removed") in marked_left  # the whole Encounter
    assert all(mark != "added" for _, mark in marked_left)
    assert all(mark != "removed" for _, mark in marked_right)
    assert not any("Everyman" in text for text, _ in marked_left | marked_right)
    json_api = result.as_json()
    assert {c["element"] for c in json_api["changes"]} == {
        "Patient.gender", "Patient.name.given", "Encounter"}


def test_export_hl7_entry_and_outcome_line() -> None:
    assert hl7_text(b"MSH|^~\\&|A\r\nPID|1\n\nPV1|1\r", "utf-8") == "MSH|^~\\&|A\rPID|1\rPV1|1\r\n"
    outcome = outcome_line(7, "RequiredFieldMissing at PID-3")
    assert outcome["resourceType"] == "OperationOutcome"
    assert "spool row 7" in json.dumps(outcome)
    OperationOutcome.model_validate(outcome)  # a valid FHIR resource on its line
