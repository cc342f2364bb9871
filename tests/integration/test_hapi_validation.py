"""Every golden Bundle and every sample's output passes the official FHIR validator.

HAPI FHIR's ``FhirInstanceValidator`` (R4 4.0.1, offline; ``tests.support.hapi_validator``)
checks what the fhir.resources models do not: codes against the R4 code systems and value
sets. One JVM validates all files of the session; an ERROR or FATAL fails the file's test
with its location and message. Without Java or Maven the tests fail when ``CI`` is set and
skip elsewhere, saying what to install.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.errors import MissingTool
from hl7gw.errors import Hl7gwError
from mappers import convert
from mappers.datatypes.vocabulary import TABLES_FILE
from tests.support import EXPECTED, MESSAGES, SAMPLES, sample_text
from tests.support.hapi_validator import Issue, failures, need_validator, validate
from tests.support.r4_v2_tables import read_tables, render, resources_jar

# The first run fetches the validator with Maven (~150 MB) inside the session fixture.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SAMPLE_FILES = {p.stem: p for p in [*SAMPLES.glob("*.hl7"), *MESSAGES.glob("*.hl7")]}
GOLDENS = sorted(p.stem for p in EXPECTED.glob("*.json"))
# A Bundle the validator must refuse: proves a run that finds nothing really looked.
BROKEN = {
    "resourceType": "Bundle", "type": "transaction",
    "entry": [{"fullUrl": "urn:uuid:1a2b3c4d-0000-4000-8000-000000000001",
               "resource": {"resourceType": "Patient", "id": "1a2b3c4d-0000-4000-8000-000000000001",
                            "gender": "mle",
                            "maritalStatus": {"coding": [{
                                "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                                "code": "NOT-A-CODE"}]}},
               "request": {"method": "PUT",
                           "url": "Patient/1a2b3c4d-0000-4000-8000-000000000001"}}],
}

# Samples with values FHIR servers used to reject from us, each edited in: (sample, segment,
# field, value). Their outputs must pass like the samples' own.
EDITED = {
    "language_0296": ("adt_a01", "PID", 15, "ENG^English^HL70296"),
    "language_name": ("adt_a01", "PID", 15, "E^English^HL70296"),
    "site_relationship": ("adt_a03", "NK1", 3, "DAU^Daughter^HL70063"),
    "site_contact_role": ("adt_a03", "NK1", 7, "EC^Emergency Contact^HL70131"),
    "event_reason": ("adt_a01", "EVN", 4, "ADM^Admission^HL70062"),
    "unit_case": ("oru_r01", "OBX", 6, "MG/DL^mg/dL^UCUM"),
    "unit_spelling": ("oru_r01", "OBX", 6, "mmHg^^UCUM"),
    "unit_not_ucum": ("oru_r01", "OBX", 6, "widgets^^UCUM"),
    "timing_pattern": ("rde_o11", "TQ1", 3, "Q6H^Every 6 hours^HL70335"),
}


def _edited(sample: str, segment: str, field: int, value: str) -> str:
    lines = sample_text(sample).split("\r")
    for i, line in enumerate(lines):
        if line.startswith(segment + "|"):
            fields = line.split("|")
            fields += [""] * (field + 1 - len(fields))
            fields[field] = value
            lines[i] = "|".join(fields)
    return "\r".join(lines)


@dataclass
class Run:
    """One validator run over every file: the issues per file, and outputs that failed."""

    issues: dict[Path, list[Issue]]
    golden: dict[str, Path]
    output: dict[str, Path]
    conversion_errors: dict[str, str]
    broken: Path
    edited: dict[str, Path]


@pytest.fixture(scope="session")
def hapi_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Convert every sample, then validate goldens, outputs and ``BROKEN`` in one JVM.

    An output identical to its golden file is validated once, as the golden file.
    """
    folder = tmp_path_factory.mktemp("hapi")
    golden = {name: EXPECTED / f"{name}.json" for name in GOLDENS}
    output: dict[str, Path] = {}
    errors: dict[str, str] = {}
    for name, path in sorted(SAMPLE_FILES.items()):
        try:
            text = json.dumps(convert(path.read_bytes().decode()).bundle, indent=2,
                              sort_keys=True, ensure_ascii=False) + "\n"
        except Hl7gwError as exc:  # a sample that does not convert fails its own test only
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        if name in golden and golden[name].read_text() == text:
            output[name] = golden[name]
        else:
            output[name] = folder / f"{name}.output.json"
            output[name].write_text(text)
    broken = folder / "broken.json"
    broken.write_text(json.dumps(BROKEN))
    edited = {name: folder / f"{name}.edited.json" for name in EDITED}
    for name, path in edited.items():
        path.write_text(json.dumps(convert(_edited(*EDITED[name])).bundle))
    files = [*sorted({*golden.values(), *output.values()}), broken, *edited.values()]
    try:
        issues = validate(files)
    except MissingTool as exc:
        need_validator(str(exc))
    return Run(issues, golden, output, errors, broken, edited)


def _assert_valid(run: Run, path: Path) -> None:
    failed = failures({path: run.issues[path]})
    if failed:
        pytest.fail(f"{len(failed)} validator error(s):\n" + "\n".join(failed), pytrace=False)


@pytest.mark.parametrize("name", GOLDENS)
def test_golden_bundle_passes_the_hapi_validator(hapi_run: Run, name: str) -> None:
    _assert_valid(hapi_run, hapi_run.golden[name])


@pytest.mark.parametrize("name", sorted(SAMPLE_FILES))
def test_sample_output_passes_the_hapi_validator(hapi_run: Run, name: str) -> None:
    if name in hapi_run.conversion_errors:
        pytest.fail(f"{SAMPLE_FILES[name]} does not convert: {hapi_run.conversion_errors[name]}")
    _assert_valid(hapi_run, hapi_run.output[name])


@pytest.mark.parametrize("name", sorted(EDITED))
def test_codes_outside_their_systems_pass_the_hapi_validator(hapi_run: Run, name: str) -> None:
    _assert_valid(hapi_run, hapi_run.edited[name])


def test_the_validator_refuses_a_bad_code(hapi_run: Run) -> None:
    found = failures({hapi_run.broken: hapi_run.issues[hapi_run.broken]})
    assert any(".gender" in line and "'mle'" in line for line in found), found
    assert any("NOT-A-CODE" in line for line in found), found


def test_the_mappers_hl7_tables_are_those_the_validator_knows(hapi_run: Run) -> None:
    """The table codes the mapper checks against (``vocabulary.HL7_TABLES``) are R4's."""
    assert TABLES_FILE.read_text() == render(read_tables(resources_jar()))
