"""What real feeds send: versions 2.3-2.8, separators, trailing delimiters, Z-segments,
codes outside their tables, missing optional segments. Never a crash; issues, not guesses."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from mappers import MessageError, convert
from tests.support import MESSAGES, of_type
from tests.support.mutation import mutate

ORU = (MESSAGES / "oru_r01.hl7").read_bytes().decode()


def obs(bundle: dict[str, Any], code: str) -> dict[str, Any]:
    return next(o for o in of_type(bundle, "Observation")
                if o["code"]["coding"][0]["code"] == code)


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.6", "2.7", "2.7.1", "2.8"])
def test_oru_in_every_version(version: str) -> None:
    result = convert(ORU.replace("|2.5.1|", f"|{version}|"), validate=True)
    assert len(of_type(result.bundle, "Observation")) == 12


def test_v2_3_ce_and_later_cwe_give_the_same_concept() -> None:
    cwe = obs(convert(ORU).bundle, "5778-6")["valueCodeableConcept"]
    ce = obs(convert(ORU.replace("OBX|1|CWE|", "OBX|1|CE|")).bundle, "5778-6")
    assert ce["valueCodeableConcept"] == cwe


@pytest.mark.parametrize("kind", ["DT", "TS", "DTM"])
def test_date_value_types(kind: str) -> None:
    message = ORU.replace("OBX|7|DT|", f"OBX|7|{kind}|")
    assert obs(convert(message).bundle, "33882-2")["valueDateTime"] == "2024-03-12"


def test_separators_bom_and_trailing_delimiters_change_nothing() -> None:
    expected = orjson.dumps(convert(ORU).bundle)
    segments = [s for s in ORU.split("\r") if s]
    variants = ["\n".join(segments) + "\n", "\r\n".join(segments), "\ufeff" + ORU,
                "\r".join(s + "|||" for s in segments if not s.startswith("MSH")
                          ).join([segments[0] + "\r", ""])]
    for variant in variants:
        assert orjson.dumps(convert(variant).bundle) == expected


def test_empty_repetitions_and_explicit_nulls() -> None:
    message = ORU.replace("7712345^^^RIVERSIDE", "~~7712345^^^RIVERSIDE").replace(
        "|70-99|H|", '|""|H|')
    bundle = convert(message, validate=True).bundle
    assert len(of_type(bundle, "Patient")[0]["identifier"]) == 1
    assert "referenceRange" not in obs(bundle, "2345-7")


def test_z_segments_are_reported_not_mapped() -> None:
    result = convert(ORU.replace("\rOBX|1|NM|", "\rZLB|1|internal^code|x\rOBX|1|NM|", 1))
    assert {"ZLB-1", "ZLB-2", "ZLB-3"} <= set(result.unmapped)
    assert len(of_type(result.bundle, "Observation")) == 12


def test_codes_outside_their_tables_are_issues_and_left_out() -> None:
    message = ORU.replace("|70-99|H|||F|", "|70-99|HIGHISH|||Q|")
    result = convert(message, validate=True)
    glucose = obs(result.bundle, "2345-7")
    assert glucose["status"] == "unknown"  # OBX-11 Q is not in 0085
    # kept as sent, but not under table 0078's system, which does not define it
    assert glucose["interpretation"] == [{"coding": [{"code": "HIGHISH"}]}]
    found = {(i.code, i.location) for i in result.issues}
    assert {("unknown-code", "OBX-8"), ("unknown-code", "OBX-11")} <= found
    assert not any("HIGHISH" in i.text for i in result.issues)


def test_missing_optional_segments() -> None:
    keep = [s for s in ORU.split("\r") if s[:3] not in {"PV1", "ORC", "SPM", "NTE"}]
    bundle = convert("\r".join(keep), validate=True).bundle
    assert of_type(bundle, "Encounter") == [] and of_type(bundle, "Specimen") == []
    reports = of_type(bundle, "DiagnosticReport")
    assert [len(r["result"]) for r in reports] == [7, 5] and "specimen" not in reports[0]


def test_unsupported_value_type_is_an_issue() -> None:
    message = ORU.replace("OBX|6|ST|", "OBX|6|RP|")
    result = convert(message, validate=True)
    assert ("unsupported-value-type", "OBX-2") in {(i.code, i.location) for i in result.issues}
    assert "valueString" not in obs(result.bundle, "11556-8")


def test_bad_numbers_and_bad_base64_are_issues() -> None:
    message = ORU.replace("||112|mg/dL", "||1l2|mg/dL").replace("^Base64^JVBER", "^Base64^*VBER")
    result = convert(message, validate=True)
    assert "valueQuantity" not in obs(result.bundle, "2345-7")
    assert of_type(result.bundle, "DocumentReference") == []  # no content: not produced
    assert {("invalid-value", "OBX-5")} <= {(i.code, i.location) for i in result.issues}


def test_mutated_messages_of_every_type_give_valid_bundles_or_message_errors() -> None:
    samples = [p.read_bytes().decode() for p in sorted(MESSAGES.glob("*.hl7"))]
    rng = random.Random(20240312)
    alphabet = '|^~\\&"#AZ09 .-+\r\n\tOBXPIDSN'
    outcomes = {"converted": 0, "refused": 0}
    for _ in range(300):
        message = mutate(rng, rng.choice(samples), alphabet, max_edits=6)
        try:
            convert(message, validate=True)
        except MessageError:
            outcomes["refused"] += 1
            continue
        outcomes["converted"] += 1
    assert outcomes["converted"] > 150 and outcomes["refused"] > 5
