"""Which validator messages fail a Bundle: tests.support.hapi_validator's rules, no JVM."""

from __future__ import annotations

from pathlib import Path

from tests.support.hapi_validator import Issue, _issue, failures


def test_unknown_code_in_an_hl7_table_fails() -> None:
    issue = Issue("error", "Patient.maritalStatus",
                  "Unknown code 'http://terminology.hl7.org/CodeSystem/v2-0002#Q'")
    assert issue.fails and not issue.external


def test_complaints_about_external_code_systems_are_warnings() -> None:
    for message in ("Unable to validate code 'http://loinc.org#2345-7' (CodeSystem unknown)",
                    "CodeSystem is unknown and can't be validated: http://snomed.info/sct",
                    "Unknown code 'http://www.nlm.nih.gov/research/umls/rxnorm#70618'",
                    "A definition for CodeSystem 'http://hl7.org/fhir/sid/cvx' could not be found"):
        issue = Issue("error", "Observation.code", message)
        assert issue.external and not issue.fails, message


def test_other_errors_about_loinc_still_fail() -> None:
    issue = Issue("error", "Observation.code", "Coding.system http://loinc.org has no code")
    assert issue.fails


def test_warnings_and_information_never_fail_fatal_always_does() -> None:
    assert not Issue("warning", "x", "Unknown code 'http://x#y'").fails
    assert not Issue("information", "x", "anything").fails
    assert Issue("fatal", "", "JsonParseException: unexpected end").fails


def test_the_jvm_answer_becomes_issues_and_failure_lines() -> None:
    raw = {"severity": "error", "location": "Bundle.entry[0]", "line": 7, "column": None,
           "messageId": "Terminology_PassThrough_TX_Message", "message": "Unknown code 'a#b'"}
    issue = _issue(raw)
    assert issue == Issue("error", "Bundle.entry[0]", "Unknown code 'a#b'",
                          "Terminology_PassThrough_TX_Message", 7, None)
    assert failures({Path("f.json"): [issue, Issue("warning", "x", "y")]}) == [
        "f.json: ERROR Bundle.entry[0] (line 7): Unknown code 'a#b'"]
