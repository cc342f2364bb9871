"""Per-sender profiles: each setting changes its sender's output and no one else's; every
mistake in a profile file is reported with its file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import orjson
import pytest

import mappers
from mappers.errors import ProfileError
from mappers.profiles import ProfileSet, msh_sender
from tests.support import PROFILES, of_type, sample_text

ORU = sample_text("oru_r01")
ADT = sample_text("adt_a01")
A17 = sample_text("adt_a17")


def profiles(**files: str) -> ProfileSet:
    return ProfileSet.from_sources({f"{name}.yaml": textwrap.dedent(text)
                                    for name, text in files.items()}, "profiles")


def convert(text: str, ps: ProfileSet) -> mappers.ConversionResult:
    return mappers.convert(text, profile=ps.select_text(text), validate=True)


SUNLAB = """\
    profile: sunlab
    match: {application: SUNLAB}
    codes: {"0078": {HIGHISH: H}}
    local_codes:
      - {system: L, code: GLU, to: {system: "http://loinc.org", code: "2345-7"}}
    identifier_systems: {RIVERSIDE: "https://riverside.example/sid/mrn"}
    fields:
      - {field: ZLB-2, resource: Observation, type: ST, path: device.display}
      - {field: ZLB-3, resource: Observation, type: ST,
         extension: "https://riverside.example/bench"}
    ignore_segments: [ZXX]
"""
LOCAL_ORU = (ORU.replace("2345-7^Glucose [Mass/volume] in Serum or Plasma^LN", "GLU^Glucose^L")
             .replace("|70-99|H|", "|70-99|HIGHISH|")
             .replace("\rOBX|2|", "\rZLB|1|Cobas|Bench 4\rZXX|route\rOBX|2|", 1))
OTHER_ORU = LOCAL_ORU.replace("|SUNLAB|", "|MOONLAB|", 1)


def test_the_profile_changes_its_senders_output_and_not_anothers() -> None:
    ps = profiles(sunlab=SUNLAB)
    mine, other = convert(LOCAL_ORU, ps), convert(OTHER_ORU, ps)
    glucose = of_type(mine.bundle, "Observation")[0]
    assert glucose["code"]["coding"][0] == {"system": "http://loinc.org", "code": "2345-7"}
    assert glucose["code"]["coding"][1] == {"code": "GLU", "display": "Glucose"}  # kept, after
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": "H"} in glucose["interpretation"][0]["coding"]
    assert of_type(mine.bundle, "Patient")[0]["identifier"][0]["system"] == \
        "https://riverside.example/sid/mrn"
    unchanged = of_type(other.bundle, "Observation")[0]
    assert unchanged["code"] == {"coding": [{"code": "GLU", "display": "Glucose"}]}
    assert of_type(other.bundle, "Patient")[0]["identifier"][0]["system"] == \
        "urn:oid:2.16.840.1.113883.3.7777.1"
    assert ("unknown-code", "OBX-8") in {(i.code, i.location) for i in other.issues}
    assert ("unknown-code", "OBX-8") not in {(i.code, i.location) for i in mine.issues}


def test_a_z_segment_goes_to_an_extension_and_an_element_of_the_obx_it_follows() -> None:
    ps = profiles(sunlab=SUNLAB)
    observations = of_type(convert(LOCAL_ORU, ps).bundle, "Observation")
    assert observations[0]["extension"] == [{"valueString": "Bench 4",
                                             "url": "https://riverside.example/bench"}]
    assert observations[0]["device"] == {"display": "Cobas"}
    assert all("extension" not in o and "device" not in o for o in observations[1:])
    assert not any("extension" in o for o in of_type(convert(OTHER_ORU, ps).bundle,
                                                        "Observation"))


TIERS = """\
    profile: tiers
    match: {application: EPICADT}
    fields:
      - {field: ZPD-2, resource: Patient, type: ST, extension: "https://x.example/tier"}
"""


def _tiers(bundle: dict) -> list[list[str]]:
    return [[e["valueString"] for e in p.get("extension", []) if e["url"] ==
             "https://x.example/tier"] for p in of_type(bundle, "Patient")]


def test_a_z_segment_at_the_end_of_an_adt_message_belongs_to_its_one_patient() -> None:
    # Sites append their Z-segments after PV1 and the rest, not right after the PID. Since
    # Patient repeats (A17 carries two), the ZPD was read only right after a PID: dropped.
    ps = profiles(tiers=TIERS)
    text = ADT.rstrip("\r") + "\rZPD|1|PLATINUM\r"
    assert ps.select_text(text) is not None
    assert _tiers(convert(text, ps).bundle) == [["PLATINUM"]]


def test_with_two_patients_a_z_segment_belongs_only_to_the_pid_it_follows() -> None:
    ps = profiles(tiers=TIERS)
    first, second = A17.split("\rPID|2|")
    right_after = first + "\rPID|2|" + second.replace("\rPV1|", "\rZPD|1|GOLD\rPV1|", 1)
    assert _tiers(convert(right_after, ps).bundle) == [[], ["GOLD"]]
    at_the_end = A17.rstrip("\r") + "\rZPD|1|GOLD\r"  # whose? neither, rather than a guess
    assert _tiers(convert(at_the_end, ps).bundle) == [[], []]


def test_ignored_segments_are_neither_mapped_nor_reported() -> None:
    ps = profiles(sunlab=SUNLAB)
    assert {"ZXX-1", "ZLB-2"} <= set(convert(OTHER_ORU, ps).unmapped)
    mine = convert(LOCAL_ORU, ps).unmapped
    assert "ZXX-1" not in mine and "ZLB-2" not in mine and "ZLB-1" in mine


def test_the_profile_time_zone_applies_to_timestamps_without_an_offset() -> None:
    ps = profiles(vienna="""\
        profile: vienna
        match: {application: EPICADT}
        timezone: Europe/Vienna
    """)
    text = ADT.replace("20240115103000-0500", "20240715103000")
    stamp = convert(text, ps).bundle["timestamp"]
    assert stamp == "2024-07-15T10:30:00+02:00"
    assert mappers.convert(text).bundle["timestamp"] == "2024-07-15T10:30:00+00:00"
    # an explicit zone from the caller wins over the profile's
    explicit = mappers.convert(text, profile=ps.get("vienna"), default_tz="UTC")
    assert explicit.bundle["timestamp"] == "2024-07-15T10:30:00+00:00"


def test_patient_key_by_authority_and_type_and_from_another_field() -> None:
    # PID-3 lists the MRN first: keying on the SSN repetition instead gives another id
    by_ssn = profiles(p="""\
        profile: ssn
        match: {application: EPICADT}
        patient_key: {authority: SSA, type: SS}
    """)
    default = mappers.convert(ADT).patient_key
    assert convert(ADT, by_ssn).patient_key not in (None, default)
    moved = ADT.replace("|4820017^^^GOODHEALTH", "|", 1)  # the MRN as PID-2 instead
    moved = moved.replace("PID|1||", "PID|1|4820017^^^GOODHEALTH&2.16.840.1.113883.3.9999.1"
                          "&ISO^MR^GOODHEALTH|", 1)
    pid2 = profiles(p="""\
        profile: pid2
        match: {application: EPICADT}
        patient_key: {field: PID-2}
        fields:
          - {field: PID-2, resource: Patient, type: CX, path: "identifier[]"}
    """)
    result = convert(moved, pid2)
    assert result.patient_key == default
    assert any(i["value"] == "4820017" for i in of_type(result.bundle, "Patient")[0]["identifier"])


def test_a_missing_key_identifier_is_an_issue_not_a_refusal() -> None:
    ps = profiles(p="""\
        profile: p
        match: {application: EPICADT}
        patient_key: {authority: NOWHERE}
    """)
    result = convert(ADT, ps)
    assert result.patient_key == mappers.convert(ADT).patient_key
    assert ("patient-key", "PID-3") in {(i.code, i.location) for i in result.issues}


def test_the_most_specific_profile_wins_and_versions_match() -> None:
    ps = profiles(a_any="""\
        profile: any-sunlab
        match: {application: SUNLAB}
    """, b_exact="""\
        profile: sunlab-riverside-251
        match: {application: SUNLAB, facility: RIVERSIDE, version: 2.5.1}
    """)
    assert ps.select("SUNLAB", "RIVERSIDE", "2.5.1").name == "sunlab-riverside-251"
    assert ps.select("SUNLAB", "RIVERSIDE", "2.3").name == "any-sunlab"
    assert ps.select("SUNLAB", "ELSEWHERE", "2.5.1").name == "any-sunlab"
    assert ps.select("OTHER", "RIVERSIDE", "2.5.1") is None
    assert ps.select_text(ORU).name == "sunlab-riverside-251"
    assert ps.names() == ["any-sunlab", "sunlab-riverside-251"]


def test_explain_names_the_profile_and_its_translations() -> None:
    ps = profiles(sunlab=SUNLAB)
    report = mappers.explain(LOCAL_ORU, profile=ps.get("sunlab"))
    assert "sender profile 'sunlab' (profiles/sunlab.yaml)" in report.splitlines()[0]
    assert "profile local_codes: L GLU -> http://loinc.org 2345-7" in report
    assert "Observation.device.display <- ZLB-2 (ST)" in report
    assert "Observation.extension[0].valueString <- ZLB-3 (ST)" in report


def test_load_reads_a_folder_like_from_sources(tmp_path: Path) -> None:
    (tmp_path / "sunlab.yaml").write_text(textwrap.dedent(SUNLAB))
    (tmp_path / "notes.txt").write_text("not a profile")
    loaded = ProfileSet.load(tmp_path)
    assert loaded.names() == ["sunlab"] and set(loaded.sources) == {"sunlab.yaml"}
    again = ProfileSet.from_sources(loaded.sources, str(tmp_path))
    assert orjson.dumps(convert(LOCAL_ORU, again).bundle) == \
        orjson.dumps(convert(LOCAL_ORU, loaded).bundle)


def test_the_sample_profile_loads() -> None:
    ps = ProfileSet.load(PROFILES)
    assert ps.select_text(ORU) is not None


@pytest.mark.parametrize(("text", "expected"), [
    ("profile: p\n  bad: indent\n", "p.yaml:2: not valid YAML"),
    ("profile: p\nmatch:\n  aplication: A\n", "p.yaml:3: match.aplication: unknown key"),
    ("profile: p\ntimezone: Mars/Olympus\n", "p.yaml:2: timezone: unknown time zone"),
    ("profile: p\ncharset: klingon\n", "p.yaml:2: charset: unknown charset"),
    ("profile: p\ncodes:\n  '9999': {A: b}\n", "p.yaml:3: codes.9999: unknown code table"),
    ("profile: p\nfields:\n  - {field: ZLB-2, resource: Observaton, type: ST, path: x}\n",
     "p.yaml:3: fields[0].resource: no resource spec 'Observaton'"),
    ("profile: p\nfields:\n  - field: ZLB-2\n    resource: Patient\n    type: STT\n"
     "    path: x\n", "p.yaml:5: fields[0].type: unknown datatype 'STT'"),
    ("profile: p\nfields:\n  - {field: ZLB, resource: Patient, type: ST, path: x}\n",
     "p.yaml:3: fields[0].field: 'ZLB' is not a field reference"),
    ("profile: p\nfields:\n  - {field: ZLB-1, resource: Patient, type: ST}\n",
     "p.yaml:3: fields[0]: give exactly one of 'extension'"),
    ("profile: p\nfields:\n  - {field: ZPD-1, resource: Patient, type: ST, path: gender.x}\n",
     "p.yaml:3: fields[0]: path 'gender' is written as a value"),
    ("profile: p\npatient_key: {field: PV1-19}\n",
     "p.yaml:2: patient_key.field: 'PV1-19': the patient key must be a PID field"),
    ("profile: p\nignore_segments: [MSH]\n",
     "p.yaml:2: ignore_segments: 'MSH' is not a segment id that can be ignored"),
    ("profile: 'two words'\n", "p.yaml:1: profile: String should match pattern"),
    ("- a list\n", "p.yaml:1: a profile file must be a YAML mapping"),
    ("", "p.yaml:1: a profile file must be a YAML mapping"),
    # were a ValueError and a TypeError traceback (the final yaml.load was unguarded)
    ("profile: p\nmatch: {version: !!int two}\n", "p.yaml:2: not valid YAML: cannot read "
                                                  "'two' as !!int"),
    ("profile: p\nlocal_codes:\n  - {{code: x}}\n", "p.yaml:3: not valid YAML: a key must "
                                                    "be plain text"),
])
def test_mistakes_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ProfileError) as err:
        ProfileSet.from_sources({"p.yaml": text}, "profiles")
    assert f"profiles/{expected}" in str(err.value)


def test_two_profiles_with_one_name_or_one_match_are_refused_together() -> None:
    with pytest.raises(ProfileError) as err:
        profiles(a="profile: x\nmatch: {application: A}\n",
                 b="profile: x\nmatch: {application: B}\n",
                 c="profile: y\nmatch: {application: A}\n")
    lines = str(err.value).splitlines()
    assert lines[0].startswith("profiles/b.yaml:1: profile: name 'x' is also used by")
    assert lines[1].startswith("profiles/c.yaml:1: match: the same match as profiles/a.yaml")


def test_an_unknown_profile_name_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="no profile named 'nope'; known: sunlab"):
        profiles(sunlab=SUNLAB).get("nope")


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="profiles folder not found"):
        ProfileSet.load(tmp_path / "missing")


@pytest.mark.parametrize(("text", "expected"), [
    ("MSH|^~\\&|LAB^x|FAC^y|||20240101||ORU^R01|1|P|2.5.1\rPID|", ("LAB", "FAC", "2.5.1")),
    ("\ufeffMSH|^~\\&|LAB|FAC\nPID|1", ("LAB", "FAC", "")),
    ("PID|1|x", ("", "", "")),
    ("MSH#^~\\&#A#B#####X#1#P#2.3", ("A", "B", "2.3")),
])
def test_msh_sender_reads_the_header_without_parsing(text: str, expected: tuple[str, ...]
                                                     ) -> None:
    assert msh_sender(text) == expected


def test_a_match_key_may_list_several_values() -> None:
    ps = profiles(lab="""\
        profile: lab
        match: {application: [SUNLAB, SUNLAB2], version: [2.5, 2.5.1]}
    """)
    lab = ps.get("lab")
    assert lab.specificity == 2 and lab.application == "SUNLAB,SUNLAB2"
    assert ps.select("SUNLAB2", "ANY", "2.5") is lab
    assert ps.select("SUNLAB", "ANY", "2.5.1") is lab
    assert ps.select("SUNLAB", "ANY", "2.3") is None
    assert ps.select("MOONLAB", "ANY", "2.5") is None


def test_equally_specific_matches_that_overlap_are_refused_with_an_example() -> None:
    with pytest.raises(ProfileError) as err:
        profiles(a="profile: by-app\nmatch: {application: LAB}\n",
                 b="profile: by-facility\nmatch: {facility: NORTH}\n")
    assert str(err.value) == (
        "profiles/b.yaml:1: match: a message from application=LAB facility=NORTH "
        "version=* fits both this and profiles/a.yaml, equally specific: narrow one, or "
        "add a profile that names that combination")
    with pytest.raises(ProfileError, match="application=LAB2 facility=\\* version=\\*"):
        profiles(a="profile: a\nmatch: {application: [LAB1, LAB2]}\n",
                 b="profile: b\nmatch: {application: [LAB2, LAB3]}\n")
    # disjoint lists, or one more specific than the other: no guess to make
    ps = profiles(a="profile: a\nmatch: {application: [LAB1, LAB2]}\n",
                  b="profile: b\nmatch: {application: LAB3}\n",
                  c="profile: c\nmatch: {application: LAB1, facility: NORTH}\n")
    assert ps.select("LAB1", "NORTH", "2.5").name == "c"
    assert ps.select("LAB1", "SOUTH", "2.5").name == "a"


@pytest.mark.parametrize("match", ["{application: []}", "{application: ['*', LAB]}",
                                   "{facility: ['']}"])
def test_a_match_list_must_be_values_or_any_alone(match: str) -> None:
    with pytest.raises(ProfileError, match=r"p\.yaml:2: match\.(application|facility): "):
        ProfileSet.from_sources({"p.yaml": f"profile: p\nmatch: {match}\n"}, "profiles")
