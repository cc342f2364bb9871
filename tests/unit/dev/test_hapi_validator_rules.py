"""tests.support.hapi_validator without a JVM: which messages fail, fetch errors, the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.errors import MissingTool
from tests.support import hapi_validator
from tests.support.hapi_validator import (
    HAPI_VERSION,
    Issue,
    ValidatorUnavailable,
    _issue,
    ensure_classpath,
    failures,
)


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


def test_without_maven_the_validator_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(MissingTool) as caught:
        ensure_classpath(tmp_path, mvn="/nonexistent/mvn")
    message = str(caught.value)
    assert "apt-get install maven" in message and "hapi_validator" in message
    assert "KAFKA" not in message  # the Kafka broker's way around is not this one's


def test_a_failed_fetch_is_a_validator_error_with_mavens_words(tmp_path: Path) -> None:
    mvn = tmp_path / "mvn"
    mvn.write_text("#!/bin/sh\necho 'Could not find artifact ca.uhn.hapi.fhir'; exit 1\n")
    mvn.chmod(0o755)
    with pytest.raises(ValidatorUnavailable, match="Could not find artifact"):
        ensure_classpath(tmp_path, mvn=str(mvn))
    assert not (tmp_path / f"hapi-fhir-{HAPI_VERSION}" / "fetched.ok").exists()


def _answers(results: dict[Path, list[Issue]]) -> Callable[..., dict[Path, list[Issue]]]:
    def fake(paths: list[Path], cache: Path | None = None) -> dict[Path, list[Issue]]:
        assert list(paths) == list(results)
        return results

    return fake


def test_the_cli_prints_failures_per_file_and_exits_1(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    results = {Path("a.json"): [Issue("error", "Patient.gender", "Unknown code 'x#y'", line=3),
                                Issue("warning", "Patient", "no narrative")],
               Path("b.json"): [Issue("warning", "Observation", "no performer")]}
    monkeypatch.setattr(hapi_validator, "validate", _answers(results))
    assert hapi_validator.main(["a.json", "b.json"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ["a.json: 1 error(s)",
                   "  ERROR Patient.gender (line 3): Unknown code 'x#y'",
                   "b.json: ok", "2 file(s), 1 with errors"]


def test_the_cli_exits_0_when_only_warnings_and_shows_them_on_request(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    results = {Path("b.json"): [Issue("warning", "Observation", "no performer"),
                                Issue("information", "Observation", "fyi")]}
    monkeypatch.setattr(hapi_validator, "validate", _answers(results))
    assert hapi_validator.main(["--warnings", "b.json"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "b.json: ok", "  (not counted) WARNING Observation: no performer",
        "1 file(s), 0 with errors"]


def test_the_cli_exits_2_when_the_validator_cannot_run(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def missing(paths: list[Path], cache: Path | None = None) -> dict[Path, list[Issue]]:
        raise MissingTool("'java' not found on PATH: install a JDK")

    monkeypatch.setattr(hapi_validator, "validate", missing)
    assert hapi_validator.main(["a.json"]) == 2
    assert "'java' not found" in capsys.readouterr().err
