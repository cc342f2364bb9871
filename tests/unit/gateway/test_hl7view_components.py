"""Fields split into repetitions, components and subcomponents, named from their datatype."""

from __future__ import annotations

from gateway.console.hl7view import (
    FieldView,
    Part,
    Separators,
    component_names,
    segments,
    split_field,
)

MESSAGE = "\r".join([
    "MSH|^~\\&|EPICADT|GOODHEALTH|HL7GW|CLOUD|20240115103000||ADT^A01^ADT_A01|C1|P|2.5.1",
    "PID|1||4820017^^^GOODHEALTH&2.16.840.1.113883.3.9999.1&ISO^MR~E77123^^^EPIX^PI||"
    "Everyman^Adam^^^Mr.~Everyman^Al",
    "ZPD|1|a^b",
])


def field(seg: str, key: str) -> FieldView:
    found = [f for s in segments(MESSAGE) if s.id == seg for f in s.fields if f.key == key]
    assert len(found) == 1
    return found[0]


def test_pid3_repetitions_components_and_subcomponents_are_numbered_and_named() -> None:
    pid3 = field("PID", "PID-3")
    first, second = pid3.repetitions
    assert [(p.key, p.name, p.value) for p in first] == [
        ("PID-3.1", "Id Number", "4820017"),
        ("PID-3.4", "Assigning Authority", "GOODHEALTH&2.16.840.1.113883.3.9999.1&ISO"),
        ("PID-3.5", "Identifier Type Code", "MR")]
    assert first[1].parts == (
        Part("PID-3.4.1", "Namespace Id", "GOODHEALTH"),
        Part("PID-3.4.2", "Universal Id", "2.16.840.1.113883.3.9999.1"),
        Part("PID-3.4.3", "Universal Id Type", "ISO"))
    assert [(p.key, p.value) for p in second] == [
        ("PID-3.1", "E77123"), ("PID-3.4", "EPIX"), ("PID-3.5", "PI")]
    assert second[1].parts == ()  # no subcomponent separator: not split further


def test_pid5_names_and_empty_components_skipped() -> None:
    legal, nick = field("PID", "PID-5").repetitions
    assert [(p.key, p.name) for p in legal] == [
        ("PID-5.1", "Family Name"), ("PID-5.2", "Given Name"), ("PID-5.5", "Prefix E G Dr")]
    assert [p.value for p in nick] == ["Everyman", "Al"]


def test_plain_fields_msh_separators_and_z_segments() -> None:
    assert field("PID", "PID-1").repetitions == ()
    assert field("MSH", "MSH-2").repetitions == ()  # the encoding characters stay whole
    msh9 = field("MSH", "MSH-9").repetitions
    assert [p.name for p in msh9[0]] == ["Message Code", "Trigger Event", "Message Structure"]
    (zpd,) = field("ZPD", "ZPD-2").repetitions
    assert [(p.key, p.name, p.value) for p in zpd] == [("ZPD-2.1", "", "a"),
                                                       ("ZPD-2.2", "", "b")]


def test_other_encoding_characters_are_honoured() -> None:
    text = "MSH|*#\\@|A|B|||||ADT*A01|C|P|2.5\rPID|1||1*2*3*X@Y#9|"
    (pid,) = [s for s in segments(text) if s.id == "PID"]
    pid3 = next(f for f in pid.fields if f.key == "PID-3")
    first, second = pid3.repetitions
    assert [p.value for p in first] == ["1", "2", "3", "X@Y"]
    assert [p.value for p in first[3].parts] == ["X", "Y"]
    assert [p.value for p in second] == ["9"]


def test_component_names_unknown_field_is_empty() -> None:
    assert component_names("PID", "2.5", 999) == {}
    assert component_names("ZZZ", "2.5", 1) == {}
    assert split_field("X-1", "plain", {}, Separators()) == ()
