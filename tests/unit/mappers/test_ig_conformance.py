"""Every resource spec against the HL7 v2-to-FHIR IG segment maps it implements.

Each IG row that maps a field to a FHIR attribute is mapped by one of our rules to the same
top-level attribute, or listed in the spec's ``not_mapped`` with a reason; a silent omission
fails, and so does a ``not_mapped`` entry that excuses nothing. The specs are found when the
tests run, so a new spec is checked without touching this file (``mappers/ig.py``).
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mappers import SpecError
from mappers.engine.loader import SPEC_ROOT, SpecSources, load_specs, read_specs
from mappers.engine.models import ResourceSpec
from mappers.engine.refs import FieldRef
from mappers.ig import check_spec, cite, coverage, main, maps_for, read_map, top_level

SPEC_FILES = sorted((SPEC_ROOT / "resources").glob("*.yaml"))


@cache
def sources() -> SpecSources:
    return read_specs()


def spec_in(path: Path) -> ResourceSpec:
    found = [s for key, s in sources().resources.items() if sources().origin[key] == path]
    assert found, f"{path.name}: no resource spec loaded from it (overridden by name?)"
    return found[0]


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.name for p in SPEC_FILES])
def test_every_ig_row_is_mapped_or_listed_with_a_reason(path: Path) -> None:
    result = check_spec(spec_in(path), sources().resources)
    missing = [f"{path.name}: {row.field} -> {row.attribute} (IG {row.map}, line {row.line}"
               f"{', ' + row.condition if row.condition else ''}): no rule maps it to "
               f"{row.top} and not_mapped does not list {row.field}" for row in result.missing]
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.name for p in SPEC_FILES])
def test_no_stale_not_mapped_entry(path: Path) -> None:
    result = check_spec(spec_in(path), sources().resources)
    stale = [f"{path.name}: not_mapped {name}: {why}" for name, why in result.stale]
    assert not stale, "\n".join(stale)


# -- the logic, on small specs -------------------------------------------------------------

def spec(rules: list[dict[str, Any]], **more: Any) -> ResourceSpec:
    doc = {"resource": "Patient", "segment": "PID", "id": {"key": "identifier",
                                                           "field": "PID-3"},
           "rules": rules, **more}
    return ResourceSpec.model_validate(doc)


XPN_NAME = {"field": "PID-5", "type": "XPN", "path": "name[]"}


def test_a_field_neither_mapped_nor_listed_is_missing_with_its_attribute() -> None:
    result = check_spec(spec([XPN_NAME]))
    assert result.maps == ["PID[Patient]"]
    assert "PID-5" in {r.field for r in result.mapped}
    gender = [r for r in result.missing if r.field == "PID-8"]
    assert [(r.attribute, r.map) for r in gender] == [("gender", "PID[Patient]")]


def test_not_mapped_excuses_the_rows_of_its_field() -> None:
    result = check_spec(spec([XPN_NAME], not_mapped={"PID-8": "sent elsewhere"}))
    assert "PID-8" in {r.field for r in result.listed}
    assert "PID-8" not in {r.field for r in result.missing}
    assert result.stale == []


def test_a_listed_field_that_a_rule_maps_is_stale() -> None:
    result = check_spec(spec([XPN_NAME], not_mapped={"PID-5": "no"}))
    assert result.stale == [("PID-5", "every IG row of it is mapped by a rule")]


def test_a_listed_field_the_ig_does_not_map_is_stale() -> None:
    result = check_spec(spec([XPN_NAME], not_mapped={"PID-1": "set id", "ZPI-1": "local"}))
    assert {name for name, _ in result.stale} == {"PID-1", "ZPI-1"}


def test_a_field_mapped_to_another_attribute_is_still_missing() -> None:
    result = check_spec(spec([{"field": "PID-5", "type": "XPN", "path": "contact[].name"}]))
    assert "PID-5" in {r.field for r in result.missing}


def test_a_component_and_an_extra_field_count_for_their_field() -> None:
    rules: list[dict[str, Any]] = [{"field": "PID-5.1", "type": "ST", "path": "name[].family"},
             {"field": "PID-7", "type": "TS", "path": "birthDate", "extra": ["PID-8"]}]
    mapped = {r.field for r in check_spec(spec(rules)).mapped}
    assert {"PID-5", "PID-7"} <= mapped
    assert "PID-8" not in mapped  # extra feeds birthDate, the IG wants gender


def test_choice_elements_compare_by_their_base() -> None:
    assert top_level("valueQuantity[1]") == top_level("valueString") == "value[x]"
    assert top_level("deceasedDateTime") == "deceased[x]"
    # the choice itself, as a Reference to a resource made from the field
    assert top_level("medication(Medication.code)") == "medication[x]"
    assert top_level("occurrenceTIming.repeat.offset") == "occurrence[x]"  # as the IG spells it
    assert top_level("name[1].family") == top_level("name[]") == "name"
    assert top_level("performer[1](PractitionerRole)") == "performer"
    assert top_level("extension??-identityUnknown") == "extension"
    assert top_level("local implementation") == "extension"
    assert top_level("birthDate.extension[1].url") == "birthDate"


def test_a_spec_without_an_ig_map_has_nothing_to_check() -> None:
    practitioner = ResourceSpec.model_validate({
        "resource": "Practitioner", "segment": "OBX", "name": "ResponsibleObserver",
        "id": {"key": "fields", "field": "OBX-16"},
        "rules": [{"field": "OBX-16", "type": "XCN_name", "path": "name[]"}]})
    result = check_spec(practitioner)
    assert result.maps == [] and result.missing == []


def test_the_maps_of_other_segments_a_spec_maps_are_checked_too() -> None:
    gp = {"field": "PD1-4", "type": "XCN", "path": "generalPractitioner[]"}
    patient = spec([XPN_NAME, gp, {"field": "MRG-1", "type": "patient_link",
                                   "path": "link[0].other"}])
    assert maps_for(patient) == ["PID[Patient]", "PD1[Patient]"]  # no MRG[Patient] in the IG
    result = check_spec(patient)
    assert "PD1-4" in {r.field for r in result.mapped if r.map == "PD1[Patient]"}
    assert "PD1-3" in {r.field for r in result.missing if r.map == "PD1[Patient]"}
    # a field read only by the id or a condition does not pull its segment's map in
    only_id = spec([XPN_NAME], id={"key": "identifier", "field": "PD1-4"})
    assert maps_for(only_id) == ["PID[Patient]"]


def test_a_reference_maps_the_fields_the_referenced_spec_reads() -> None:
    observer = ResourceSpec.model_validate({
        "resource": "Practitioner", "segment": "OBX", "name": "ResponsibleObserver",
        "id": {"key": "fields", "field": "OBX-16"},
        "rules": [{"field": "OBX-16", "type": "XCN_name", "path": "name[]"}]})
    observation = ResourceSpec.model_validate({
        "resource": "Observation", "segment": "OBX", "id": {"key": "message"},
        "rules": [{"reference": "ResponsibleObserver", "path": "performer[]"}]})
    alone = check_spec(observation)
    assert "OBX-16" in {r.field for r in alone.missing}
    linked = check_spec(observation, {"ResponsibleObserver": observer})
    assert "OBX-16" in {r.field for r in linked.mapped if r.top == "performer"}


def test_ig_names_the_maps_when_they_cannot_be_inferred() -> None:
    both = spec([XPN_NAME], ig=["PID[Patient]", "PD1[Patient]"])
    assert maps_for(both) == ["PID[Patient]", "PD1[Patient]"]
    assert "PD1-4" in {r.field for r in check_spec(both).missing}
    assert maps_for(spec([XPN_NAME], ig="PD1[Patient]")) == ["PD1[Patient]"]


def test_the_vendored_maps_read_from_the_third_row() -> None:
    rows = read_map("PID[Patient]")
    first = rows[0]
    # line 5: the second header row holds a line break inside a quoted cell
    assert (first.field, first.attribute, first.line) == ("PID-2", "identifier[1]", 5)
    conditional = [r for r in rows if r.field == "PID-30"]
    assert conditional and all(r.attribute == "deceasedBoolean" for r in conditional)
    # column 10: a proposed extension the IG does not define yet still counts as a row
    assert any(r.field == "PID-31" and r.top == "extension" for r in rows)


def test_cite_finds_the_row_a_rule_implements() -> None:
    patient = spec([XPN_NAME])
    row = cite(patient, FieldRef.parse("PID-5"), "name[]")
    assert row is not None and row.cite("Patient") == "IG PID[Patient]: PID-5 -> Patient.name"
    maiden = cite(patient, FieldRef.parse("PID-6"), "extension[].valueString")
    assert maiden is not None and maiden.attribute == "extension[1].valueString"
    gp = cite(patient, FieldRef.parse("PD1-4"), "generalPractitioner[]")
    assert gp is not None and gp.map == "PD1[Patient]"
    assert cite(patient, FieldRef.parse("PID-5"), "contact[].name") is None


def test_the_coverage_table_counts_rows_per_map(capsys: pytest.CaptureFixture[str]) -> None:
    rows = {(name, spec_file): (m, listed, miss)
            for name, spec_file, m, listed, miss in coverage(
                [(Path("patient.yaml"), spec([XPN_NAME], not_mapped={"PID-8": "x"}))])}
    mapped, listed, missing = rows[("PID[Patient]", "patient.yaml")]
    assert (mapped, listed) == (1, 1)  # PID-5 -> name[1]; PID-8 -> gender
    assert mapped + listed + missing == len(read_map("PID[Patient]"))
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "| PID[Patient] | patient.yaml |" in out and "| **total** |" in out


# -- the spec keys, as the loader checks them ----------------------------------------------

@pytest.fixture
def specs(tmp_path: Path) -> Path:
    root = tmp_path / "specs"
    shutil.copytree(SPEC_ROOT, root)
    return root


def append(root: Path, block: str) -> tuple[Path, int]:
    """Add ``block`` to the Patient spec (under its ``not_mapped:`` if it has one);
    return the file and the line the block starts on."""
    path = root / "resources" / "patient.yaml"
    text = path.read_text()
    if block.startswith("  ") and "\nnot_mapped:\n" in text:
        text = text.replace("\nnot_mapped:\n", f"\nnot_mapped:\n{block}", 1)
    else:
        text += ("not_mapped:\n" if block.startswith("  ") else "") + block
    path.write_text(text)
    return path, text[: text.index(block)].count("\n") + 1


@pytest.mark.parametrize(("entry", "says"), [
    ('  PID1: "x"\n', "not_mapped.PID1: 'PID1' is not a field reference"),
    ('  PID-1.1: "x"\n', "not_mapped.PID-1.1: name the whole field (PID-1)"),
    ('  PID-1: "  "\n', "not_mapped.PID-1: give the reason the field is not mapped"),
])
def test_a_bad_not_mapped_entry_names_file_line_and_field(specs: Path, entry: str,
                                                          says: str) -> None:
    path, line = append(specs, entry)
    with pytest.raises(SpecError) as info:
        load_specs(specs)
    assert f"{path}:{line}: {says}" in str(info.value)


def test_an_unknown_ig_map_is_refused_with_the_known_ones(specs: Path) -> None:
    path, line = append(specs, "ig: PID[Patiant]\n")
    with pytest.raises(SpecError) as info:
        load_specs(specs)
    assert f"{path}:{line}: ig: no IG segment map 'PID[Patiant]'; for PID: " in str(info.value)
    assert "PID[Patient]" in str(info.value)
