"""Tests for the spec loader: broken specs fail with file, line and field named."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from mappers import SpecError
from mappers.engine.loader import SPEC_ROOT, load_specs


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    """A private copy of the built-in specs to break."""
    root = tmp_path / "specs"
    shutil.copytree(SPEC_ROOT, root)
    return root


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` (which must occur once) and return the 1-based line it starts on."""
    text = path.read_text()
    assert text.count(old) == 1, old
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new))
    return line


def error_for(*roots: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_specs(*roots)
    return str(info.value)


def test_the_built_in_specs_load() -> None:
    loaded = load_specs()
    assert {"ADT", "ORU"} <= {code for code, _ in loaded.messages}
    assert {"Patient", "Encounter", "MessageHeader", "Provenance"} <= set(loaded.resources)
    assert {"0001", "0004", "0203"} <= set(loaded.tables)


def test_unknown_datatype_names_file_line_and_field(specs: Path) -> None:
    path = specs / "resources" / "patient.yaml"
    line = edit(path, "    type: XPN\n    path: name[]\n  - field: PID-9",
                "    type: XPNN\n    path: name[]\n  - field: PID-9")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:{line}: ")
    assert re.search(r"rules\[\d+\]\.type: .*unknown datatype 'XPNN'", msg)


def test_bad_field_reference(specs: Path) -> None:
    path = specs / "resources" / "encounter.yaml"
    line = edit(path, "  - field: PV1-44\n", "  - field: PV1_44\n")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:{line}: ")
    assert "field" in msg and "'PV1_44' is not a field reference" in msg


def test_misspelt_key(specs: Path) -> None:
    path = specs / "resources" / "encounter.yaml"
    line = edit(path, "    path: period.end\n", "    pth: period.end\n")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:{line}: ")
    assert "pth: unknown key (check the spelling)" in msg


def test_missing_key_names_the_mapping(specs: Path) -> None:
    path = specs / "resources" / "messageheader.yaml"
    edit(path, "resource: MessageHeader\n", "")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:")
    assert "resource: Field required" in msg


def test_unknown_code_table(specs: Path) -> None:
    path = specs / "resources" / "patient.yaml"
    line = edit(path, '    table: "0001"\n', '    table: "0009"\n')
    msg = error_for(specs)
    # a rule's line is where its mapping starts: the "- field: PID-8" line above the table
    assert re.match(rf"{re.escape(str(path))}:{line - 2}: rules\[\d+\]\.table: ", msg)
    assert "unknown code table '0009'" in msg


def test_unquoted_numeric_table_code(specs: Path) -> None:
    path = specs / "codes" / "0136.yaml"
    line = edit(path, '  "Y": true\n', "  1: true\n")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:")
    assert "map" in msg and "valid string" in msg
    assert int(msg.split(":")[1]) in {line, line - 1}


def test_unknown_predicate_and_bad_args(specs: Path) -> None:
    path = specs / "resources" / "patient.yaml"
    line = edit(path, "    when: {not_valued: PID-29}\n", "    when: {is_empty: PID-29}\n")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:{line}: ")
    assert "unknown predicate 'is_empty'" in msg


def test_datatype_args_are_checked(specs: Path) -> None:
    path = specs / "resources" / "patient.yaml"
    line = edit(path, "    args: {as: date}\n", "    args: {as: day}\n")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:")
    assert "arg 'as' of TS must be one of date, dateTime, instant" in msg
    assert int(msg.split(":")[1]) in range(line - 2, line + 1)


def test_yaml_syntax_error(specs: Path) -> None:
    path = specs / "codes" / "0001.yaml"
    text = path.read_text().splitlines()
    text[3] = "  F: [female"
    path.write_text("\n".join(text) + "\n")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:")
    assert "not valid YAML" in msg


def test_reference_to_a_resource_built_later(specs: Path) -> None:
    path = specs / "messages" / "adt_a01.yaml"
    edit(path, "resources: [Patient, Encounter,", "resources: [Encounter, Patient,")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:")
    assert "refers to Patient, which must be listed before it" in msg


def test_a_path_written_as_value_and_container(specs: Path) -> None:
    path = specs / "resources" / "patient.yaml"
    edit(path, "    path: gender\n", "    path: birthDate.year\n")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:")
    assert "'birthDate'" in msg and "container" in msg


def test_the_same_event_in_two_message_specs(specs: Path) -> None:
    copy = specs / "messages" / "adt_a01_copy.yaml"
    shutil.copy(specs / "messages" / "adt_a01.yaml", copy)
    msg = error_for(specs)
    assert "is already mapped by another message spec" in msg


def test_a_later_root_overrides_by_file_name(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "codes").mkdir(parents=True)
    (site / "codes" / "0001.yaml").write_text(
        'table: "0001"\ndescription: site sexes\nmap:\n  F: female\n  M: male\n  W: female\n')
    loaded = load_specs(SPEC_ROOT, site)
    assert loaded.tables["0001"].description == "site sexes"
    assert loaded.resolved_tables["0001"]["W"] == "female"
    assert "A" not in loaded.resolved_tables["0001"]


def test_unknown_resource_level_predicate(specs: Path) -> None:
    path = specs / "resources" / "observation.yaml"
    line = edit(path, "when: {not_attachment_type: OBX-2}", "when: {is_lab: OBX-2}")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:{line}: when: ") and "unknown predicate 'is_lab'" in msg


def test_reference_to_a_spec_no_file_defines(specs: Path) -> None:
    path = specs / "resources" / "messageheader.yaml"
    edit(path, "  - reference: DiagnosticReport\n", "  - reference: DiagnosticRepot\n")
    msg = error_for(specs)
    assert "refers to DiagnosticRepot, which no resource spec is named" in msg


def test_unknown_id_key_option(specs: Path) -> None:
    path = specs / "resources" / "observation.yaml"
    line = edit(path, "  scope: [OBR-3,", "  scopes: [OBR-3,")
    msg = error_for(specs)
    assert msg.startswith(f"{path}:{line}: id.scopes: ")


def test_tables_can_ignore_case() -> None:
    from mappers.conversion import default_specs

    resolved = default_specs().resolved_tables["0278"]
    assert resolved["BOOKED"] == "booked" and "Booked" not in resolved
