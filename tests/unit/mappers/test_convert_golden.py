"""Golden tests: each sample message -> its expected Bundle; validity, ids and determinism.

Regenerate after an intended mapping change with
``HL7GW_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/mappers/test_convert_golden.py`` and
review the diff of samples/expected/ before committing it.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from mappers import ConversionResult, convert
from tests.support import SAMPLES

NAMES = ["adt_a01", "adt_a04", "adt_a08"]  # the ADT samples the gateway demo sends
# Every sample: samples/*.hl7 and samples/messages/*.hl7, each with samples/expected/<stem>.json
SAMPLE_FILES = {p.stem: p for p in [*SAMPLES.glob("*.hl7"), *SAMPLES.glob("messages/*.hl7")]}
ALL = sorted(SAMPLE_FILES)
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_HAS_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?")


def sample(name: str) -> str:
    return SAMPLE_FILES[name].read_bytes().decode()


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def resources(result: ConversionResult) -> dict[str, dict[str, Any]]:
    return {e["resource"]["resourceType"]: e["resource"] for e in result.bundle["entry"]}


@pytest.mark.parametrize("name", ALL)
def test_sample_matches_its_golden_bundle(name: str) -> None:
    actual = pretty(convert(sample(name)).bundle)
    golden = SAMPLES / "expected" / f"{name}.json"
    if os.environ.get("HL7GW_UPDATE_GOLDEN") == "1":
        golden.write_text(actual)
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True),
                                            actual.splitlines(keepends=True),
                                            fromfile=str(golden), tofile="convert()"))
        pytest.fail(f"{name} differs from its golden file:\n{diff}", pytrace=False)


@pytest.mark.parametrize("name", ALL)
def test_golden_bundles_are_valid_fhir(name: str) -> None:
    golden = json.loads((SAMPLES / "expected" / f"{name}.json").read_text())
    Bundle.model_validate(golden)  # raises when invalid
    convert(sample(name), validate=True)  # the same check through the public switch


def _walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(path, value)] + [x for k, v in value.items() for x in _walk(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [(path, value)] + [x for i, v in enumerate(value) for x in _walk(v, f"{path}[{i}]")]
    return [(path, value)]


@pytest.mark.parametrize("name", ALL)
def test_no_empty_elements_and_no_time_without_offset(name: str) -> None:
    for path, value in _walk(convert(sample(name)).bundle):
        assert value not in (None, "", [], {}), f"empty element at {path}"
        if isinstance(value, str):
            assert value == value.strip(), f"untrimmed string at {path}"
            if _HAS_TIME.fullmatch(value[:19]) and len(value) >= 16:
                assert re.search(r"(Z|[+-]\d\d:\d\d)$", value), f"no offset at {path}"


@pytest.mark.parametrize("name", ALL)
def test_bundle_shape_ids_and_references(name: str) -> None:
    result = convert(sample(name))
    bundle = result.bundle
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    assert _FHIR_ID.fullmatch(bundle["id"])
    urls = set()
    for entry in bundle["entry"]:
        res = entry["resource"]
        assert _FHIR_ID.fullmatch(res["id"])
        assert entry["fullUrl"] == f"urn:uuid:{res['id']}"
        assert entry["request"] == {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}
        urls.add(entry["request"]["url"])
    refs = [v["reference"] for _, v in _walk(bundle) if isinstance(v, dict) and "reference" in v]
    assert refs and set(refs) <= urls  # every reference points into the Bundle
    patients = [e["resource"]["id"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == "Patient"]
    # the first Patient (A40: the survivor); none for blocked time (SIU^S23) or a purge
    assert result.patient_key == (patients[0] if patients else None)


def test_a01_maps_the_ig_elements() -> None:
    result = convert(sample("adt_a01"))
    assert result.message_type == "ADT^A01" and result.control_id == "GH20240115103000001"
    assert result.bundle["timestamp"] == "2024-01-15T10:30:00-05:00"
    res = resources(result)
    patient, encounter, header = res["Patient"], res["Encounter"], res["MessageHeader"]
    assert [i["system"] for i in patient["identifier"]] == [
        "urn:oid:2.16.840.1.113883.3.9999.1", "urn:oid:2.16.840.1.113883.4.1", "urn:id:EPIX"]
    assert patient["gender"] == "male" and patient["birthDate"] == "1980-06-14"
    assert patient["deceasedBoolean"] is False and "deceasedDateTime" not in patient
    assert encounter["status"] == "in-progress"
    assert encounter["class"]["code"] == "IMP"
    assert encounter["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert encounter["period"] == {"start": "2024-01-15T10:25:00-05:00"}
    assert [p["type"][0]["coding"][0]["code"] for p in encounter["participant"]] == [
        "ATND", "REF", "ADM"]
    assert header["eventCoding"] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": "A01"}
    assert header["source"] == {"name": "EPICADT", "endpoint": "urn:hl7v2:EPICADT:GOODHEALTH"}
    assert header["focus"] == [{"reference": f"Patient/{patient['id']}"},
                               {"reference": f"Encounter/{encounter['id']}"}]
    assert res["Provenance"]["recorded"] == "2024-01-15T10:29:55-05:00"
    assert res["Provenance"]["occurredDateTime"] == "2024-01-15T10:25:00-05:00"


def test_samples_report_what_they_leave_out() -> None:
    a01, a04, a08 = (convert(sample(n)) for n in NAMES)
    assert a01.unmapped == ["EVN-7", "PID-10", "PID-17", "PID-18"]
    assert a04.unmapped == ["ZPD-1", "ZPD-2"]  # NK1 now maps to RelatedPerson
    assert a08.unmapped == []
    assert a01.issues == a04.issues == a08.issues == []


def test_a04_uses_the_default_time_zone_for_times_without_offset() -> None:
    utc = resources(convert(sample("adt_a04")))["Encounter"]["period"]["start"]
    berlin = resources(convert(sample("adt_a04"), default_tz="Europe/Berlin"))
    assert utc == "2024-03-02T08:15:00+00:00"
    assert berlin["Encounter"]["period"]["start"] == "2024-03-02T08:15:00+01:00"


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        convert(sample("adt_a01"), default_tz="Mars/Olympus_Mons")


def test_same_input_gives_byte_identical_output() -> None:
    first, second = convert(sample("adt_a01")), convert(sample("adt_a01"))
    assert orjson.dumps(first.bundle) == orjson.dumps(second.bundle)
    assert first.bundle is not second.bundle


def test_a_replay_with_a_new_control_id_keeps_patient_and_encounter_ids() -> None:
    original = convert(sample("adt_a01"))
    replay = convert(sample("adt_a01").replace("GH20240115103000001", "GH20240115103000999"))
    before, after = resources(original), resources(replay)
    assert after["Patient"]["id"] == before["Patient"]["id"]
    assert after["Encounter"]["id"] == before["Encounter"]["id"]
    assert after["MessageHeader"]["id"] != before["MessageHeader"]["id"]
    assert replay.bundle["id"] != original.bundle["id"]
    assert replay.patient_key == original.patient_key


def test_an_update_lands_on_the_admitted_patient_and_visit() -> None:
    admit, update = resources(convert(sample("adt_a01"))), resources(convert(sample("adt_a08")))
    assert update["Patient"]["id"] == admit["Patient"]["id"]
    assert update["Encounter"]["id"] == admit["Encounter"]["id"]
    assert update["Patient"]["address"][0]["line"] == ["48 New Lane&Annex"]  # \T\ decoded


def test_patient_key_reveals_no_identifier() -> None:
    result = convert(sample("adt_a01"))
    assert result.patient_key is not None
    assert "4820017" not in result.patient_key and "GOODHEALTH" not in result.patient_key


def test_outputs_do_not_share_objects_with_the_specs() -> None:
    first = resources(convert(sample("adt_a01")))["Encounter"]
    first["class"]["code"] = "MUTATED"
    first["participant"][0]["type"][0]["coding"][0]["code"] = "MUTATED"
    second = resources(convert(sample("adt_a01")))["Encounter"]
    assert second["class"]["code"] == "IMP"
    assert second["participant"][0]["type"][0]["coding"][0]["code"] == "ATND"


def test_every_golden_file_has_its_sample_and_every_sample_its_golden_file() -> None:
    goldens = {p.stem for p in (SAMPLES / "expected").glob("*.json")}
    assert goldens == set(SAMPLE_FILES)
    assert len(SAMPLE_FILES) == len([*SAMPLES.glob("*.hl7"), *SAMPLES.glob("messages/*.hl7")])


@pytest.mark.parametrize("name", ALL)
def test_golden_files_validate_with_the_models(name: str) -> None:
    """Every golden Bundle, whatever its type, is accepted by the fhir.resources R4B models."""
    Bundle.model_validate(json.loads((SAMPLES / "expected" / f"{name}.json").read_text()))
