"""Tests for what convert refuses (and with which error), and for what it reports."""

from __future__ import annotations

import random
from typing import Any

import pytest

import mappers
from mappers import (
    InvalidOutput,
    MessageError,
    RequiredFieldMissing,
    SegmentSequenceError,
    UnsupportedEvent,
    UnsupportedMessageType,
    UnsupportedVersion,
    convert,
    supported_message_types,
)
from mappers.validation import validate_bundle
from tests.support import sample_text
from tests.support import without as without_in
from tests.support.mutation import mutate
from tests.unit.mappers.accel import pure_only

SAMPLE = sample_text("adt_a01")


def without(segment: str, text: str = SAMPLE) -> str:
    return without_in(segment, text)


def test_supported_message_types() -> None:
    adt = {f"ADT^{e}" for e in ("A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11",
                                 "A13", "A28", "A31", "A40")}
    assert adt <= supported_message_types()


@pytest.mark.parametrize(
    ("text", "error", "location", "ack"),
    [
        (SAMPLE.replace("ADT^A01^ADT_A01", "QRY^A19^QRY_A19"), UnsupportedMessageType,
         "MSH-9", "AR"),
        (SAMPLE.replace("ADT^A01^ADT_A01", "ADT^A99"), UnsupportedEvent, "MSH-9", "AR"),
        (SAMPLE.replace("|2.5.1|", "|2.2|"), UnsupportedVersion, "MSH-12", "AR"),
        (SAMPLE.replace("|2.5.1|", "||"), RequiredFieldMissing, "MSH-12", "AE"),
        (without("PID"), SegmentSequenceError, "PID", "AE"),
        (SAMPLE.replace("ADT^A01^ADT_A01", "ADT"), RequiredFieldMissing, "MSH-9", "AE"),
    ],
)
def test_refused_messages(text: str, error: type[MessageError], location: str, ack: str) -> None:
    with pytest.raises(error) as info:
        convert(text)
    assert info.value.location == location
    assert info.value.ack_code == ack


def test_empty_patient_identifiers_are_refused() -> None:
    lines = SAMPLE.split("\r")
    pid = lines[2].split("|")
    pid[3] = ""
    lines[2] = "|".join(pid)
    with pytest.raises(RequiredFieldMissing) as info:
        convert("\r".join(lines))
    assert (info.value.segment, info.value.field, info.value.sequence) == ("PID", 3, 3)


@pytest.mark.parametrize("version", ["2.3", "2.4", "2.5", "2.6", "2.7", "2.8"])
def test_versions_2_3_to_2_8_are_accepted(version: str) -> None:
    assert convert(SAMPLE.replace("|2.5.1|", f"|{version}|")).message_type == "ADT^A01"


def test_missing_visit_is_a_warning_not_an_error() -> None:
    result = convert(without("PV1"))
    kinds = [e["resource"]["resourceType"] for e in result.bundle["entry"]]
    assert kinds == ["Patient", "MessageHeader", "Provenance"]
    assert [(i.code, i.location) for i in result.issues] == [("missing-segment", "PV1")]


def test_visit_without_number_gets_a_per_message_id_and_says_so() -> None:
    text = SAMPLE.replace("V20240115001^^^GOODHEALTH&2.16.840.1.113883.3.9999.3&ISO^VN", "")
    first = convert(text)
    second = convert(text.replace("GH20240115103000001", "GH20240115103000002"))
    assert [(i.code, i.location) for i in first.issues] == [("fallback-id", "PV1-19")]

    def enc_id(result: mappers.ConversionResult) -> str:
        return str(next(e["resource"]["id"] for e in result.bundle["entry"]
                        if e["resource"]["resourceType"] == "Encounter"))
    assert enc_id(first) != enc_id(second)


def test_extra_segments_and_fields_are_reported_not_lost() -> None:
    # a second EVN (one Provenance a message); a second PID would be a second Patient
    text = SAMPLE + "EVN||20240115110000|||999^Other^Person\rZPD|VIP|x\r"
    result = convert(text)
    assert ("ignored-segment", "EVN") in [(i.code, i.location) for i in result.issues]
    assert result.unmapped == ["EVN-7", "PID-10", "PID-17", "PID-18",  # as without them
                               "EVN-2", "EVN-5", "ZPD-1", "ZPD-2"]
    assert all("999" not in u and "VIP" not in u for u in result.unmapped)


def test_repetitions_a_single_value_cannot_hold_are_reported() -> None:
    text = SAMPLE.replace("|19800614|", "|19800614~19800615|")
    issues = convert(text).issues
    assert [(i.code, i.location) for i in issues] == [("ignored-repetition", "PID-7")]


def test_issue_texts_carry_no_message_values() -> None:
    text = SAMPLE.replace("|19800614|M|", "|19801399|ZQX|")
    issues = convert(text).issues
    assert {i.location for i in issues} == {"PID-7", "PID-8"}
    assert not any("19801399" in i.text or "ZQX" in i.text for i in issues)


def test_validation_failure_names_the_element_not_the_value() -> None:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"fullUrl": "urn:uuid:1", "request": {"method": "PUT", "url": "Patient/p"},
                   "resource": {"resourceType": "Patient", "id": "p",
                                "birthDate": "1980-13-45"}}]}
    with pytest.raises(InvalidOutput) as info:
        validate_bundle(bundle)
    assert "birthDate" in str(info.value)
    assert "1980-13-45" not in str(info.value)


@pure_only
def test_convert_validate_raises_invalid_output(monkeypatch: pytest.MonkeyPatch) -> None:
    import mappers.conversion as convert_module

    real_bundle = convert_module._bundle

    def broken(*args: Any) -> dict[str, Any]:
        bundle = real_bundle(*args)
        bundle["entry"][0]["resource"]["birthDate"] = "1980-13-45"
        return bundle

    monkeypatch.setattr(convert_module, "_bundle", broken)
    convert(SAMPLE)  # without validation the broken Bundle goes through
    with pytest.raises(InvalidOutput, match="birthDate"):
        convert(SAMPLE, validate=True)


def test_public_api() -> None:
    for name in ("parse", "convert", "ConversionResult", "Issue", "supported_message_types",
                 "SpecError", "InvalidOutput", "UnreadableMessage", "Hl7gwError"):
        assert name in mappers.__all__
        assert getattr(mappers, name) is not None


def test_mutated_messages_give_a_valid_bundle_or_a_message_error() -> None:
    """Bad input never crashes: 400 random edits of the samples, all outputs validated."""
    samples = [SAMPLE] + [
        sample_text(n)
        for n in ("adt_a04", "adt_a08")]
    rng = random.Random(20240115)
    alphabet = '|^~\\&"#AZ09 .-+\r\n\t'
    outcomes = {"converted": 0, "refused": 0}
    for _ in range(400):
        message = mutate(rng, rng.choice(samples), alphabet, max_edits=5)
        try:
            bundle = convert(message, validate=True).bundle
        except MessageError:
            outcomes["refused"] += 1
            continue
        outcomes["converted"] += 1
        assert not _empty_elements(bundle)  # the models accept None and blanks; FHIR does not
    assert outcomes["converted"] > 200 and outcomes["refused"] > 20  # both paths exercised


def _empty_elements(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        found = [p for k, v in value.items() for p in _empty_elements(v, f"{path}.{k}")]
    elif isinstance(value, list):
        found = [p for i, v in enumerate(value) for p in _empty_elements(v, f"{path}[{i}]")]
    else:
        found = []
    untrimmed = isinstance(value, str) and value != value.strip()
    return found + ([path] if untrimmed or value in (None, "", [], {}) else [])
