"""Tests for mappers.hl7v2: separators, MSH numbering, escapes, repetitions, nulls, errors."""

from __future__ import annotations

import pytest

from mappers import RequiredFieldMissing, UnreadableMessage, parse
from mappers.hl7v2 import Encoding

MSH = ("MSH|^~\\&|EPICADT^2.16.840.1.113883.3.9999^ISO|GOODHEALTH|HL7GW|CLOUD|"
       "20240115103000-0500||ADT^A01^ADT_A01|CTRL-1|P^T|2.5.1|||AL|NE||UNICODE UTF-8")
PID = "PID|1||123^^^GH&1.2.3&ISO^MR~~456^^^SSA^SS||Doe^John^Q||\"\"|M"
TEXT = "\r".join([MSH, "EVN|A01|20240115", PID, "PV1|1|I"]) + "\r"


def test_msh_1_is_the_field_separator_and_msh_2_the_encoding_characters() -> None:
    msh = parse(TEXT).get("MSH")
    assert msh is not None
    assert msh.field(1).value == "|"
    assert msh.field(2).value == "^~\\&"
    assert msh.field(3).value == "EPICADT"  # numbering offset by one: MSH-3 is the 2nd split
    assert msh.field(9).component(2) == "A01"
    assert msh.field(10).value == "CTRL-1"
    assert msh.field(12).value == "2.5.1"


def test_msh_2_is_never_split_or_decoded() -> None:
    msh = parse(TEXT).get("MSH")
    assert msh is not None
    reps = msh.field(2).repetitions
    assert [r.raw for r in reps] == ["^~\\&"]
    assert reps[0].component(1) == "^~\\&"


def test_header_reads_msh_into_plain_strings() -> None:
    header = parse(TEXT).header
    assert header.field_sep == "|"
    assert header.encoding_chars == "^~\\&"
    assert header.sending_application == "EPICADT^2.16.840.1.113883.3.9999^ISO"
    assert header.sending_facility == "GOODHEALTH"
    assert (header.receiving_application, header.receiving_facility) == ("HL7GW", "CLOUD")
    assert header.timestamp == "20240115103000-0500"
    assert (header.message_code, header.trigger_event, header.structure) == (
        "ADT", "A01", "ADT_A01")
    assert header.message_type == "ADT^A01"
    assert header.control_id == "CTRL-1"
    assert header.processing_id == "P"
    assert header.version == "2.5.1"
    assert (header.accept_ack_type, header.application_ack_type) == ("AL", "NE")
    assert header.charset == "UNICODE UTF-8"


def test_other_encoding_characters_are_honoured() -> None:
    text = "MSH#$%!@#APP#FAC#####ADT$A01#9#P#2.5\rPID#1##7$$$AUTH@1.2@ISO%8#!F!x$y"
    msg = parse(text)
    assert msg.encoding == Encoding("#", "$", "%", "!", "@")
    pid = msg.get("PID")
    assert pid is not None
    ids = pid.field(3).repetitions
    assert [r.component(1) for r in ids] == ["7", "8"]
    assert ids[0].subcomponents(4) == ["AUTH", "1.2", "ISO"]
    assert pid.field(4).value == "#x"  # \F\ with "!" as escape is the field separator
    assert pid.field(4).component(2) == "y"
    assert msg.header.message_type == "ADT^A01"


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_cr_lf_and_crlf_separate_segments_alike(sep: str) -> None:
    msg = parse(sep.join([MSH, "EVN|A01|20240115", PID, "PV1|1|I"]))
    assert [s.id for s in msg.segments] == ["MSH", "EVN", "PID", "PV1"]
    pv1 = msg.get("PV1")
    assert pv1 is not None and pv1.field(2).value == "I"


def test_a_lone_lf_inside_a_cr_message_stays_in_its_field() -> None:
    msg = parse(MSH + "\rNTE|1||line one\nline two\rPV1|1|I")
    nte = msg.get("NTE")
    assert nte is not None
    assert nte.field(3).value == "line one\nline two"
    assert [s.id for s in msg.segments] == ["MSH", "NTE", "PV1"]


def test_bom_and_trailing_empty_segments_are_ignored() -> None:
    msg = parse("\ufeff" + TEXT + "\r\r\n  \r")
    assert [s.id for s in msg.segments] == ["MSH", "EVN", "PID", "PV1"]
    assert msg.segments[0].field(3).value == "EPICADT"


def test_segment_positions_and_lookup() -> None:
    msg = parse(TEXT + "NK1|1|A\rNK1|2|B\r")
    assert [s.position for s in msg.segments] == [1, 2, 3, 4, 5, 6]
    second = msg.get("NK1", 2)
    assert second is not None and second.field(2).value == "B"
    assert msg.get("NK1", 3) is None
    assert msg.get("OBX") is None
    assert [s.field(1).value for s in msg.get_all("NK1")] == ["1", "2"]


def test_absent_fields_and_components_read_as_empty() -> None:
    pv1 = parse(TEXT).get("PV1")
    assert pv1 is not None
    assert pv1.field(44).value == ""
    assert pv1.field(44).repetitions == []
    assert pv1.field(2).component(7) == ""
    assert len(pv1) == 2


def test_repetitions_keep_positions_and_values_skip_empty_ones() -> None:
    pid = parse(TEXT).get("PID")
    assert pid is not None
    field = pid.field(3)
    assert [r.raw for r in field.repetitions] == ["123^^^GH&1.2.3&ISO^MR", "", "456^^^SSA^SS"]
    assert [r.component(1) for r in field.values()] == ["123", "456"]
    assert [r.component(1) for r in pid.values(3)] == ["123", "456"]


def test_components_subcomponents_and_parts() -> None:
    pid = parse(TEXT).get("PID")
    assert pid is not None
    cx = pid.field(3).first
    assert cx.component(4) == "GH"  # first subcomponent of a composite component
    assert cx.subcomponents(4) == ["GH", "1.2.3", "ISO"]
    assert cx.subcomponent(4, 2) == "1.2.3"
    hd = cx.part(4)  # a component seen as a composite of its subcomponents
    assert [hd.component(i) for i in (1, 2, 3)] == ["GH", "1.2.3", "ISO"]
    assert cx.decoded(6) == ["123", "", "", "GH", "MR", ""]


def test_explicit_null_differs_from_empty() -> None:
    pid = parse(TEXT).get("PID")
    assert pid is not None
    null, empty = pid.field(7), pid.field(6)
    assert null.is_null and not null
    assert null.value == ""  # the two quote characters are never returned as a value
    assert not empty.is_null and not empty
    assert null.raw == '""' and empty.raw == ""


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("one\\.br\\two", "one\ntwo"),
        ("\\H\\bold\\N\\", "bold"),
        ("caf\\XC3A9\\", "café"),
        ("\\X41\\\\X42\\", "AB"),
        ("latin \\XE9\\", "latin é"),
        ("no\\X00\\ control", "no control"),
        ("local \\Zabc\\ kept", "local \\Zabc\\ kept"),
        ("unpaired \\F", "unpaired \\F"),
        ("no escapes", "no escapes"),
    ],
)
def test_escape_sequences_are_decoded_when_read(raw: str, decoded: str) -> None:
    nte = parse(f"{MSH}\rNTE|1||{raw}").get("NTE")
    assert nte is not None
    assert nte.field(3).raw == raw  # stored as sent
    assert nte.field(3).value == decoded


def test_escaped_separators_do_not_split() -> None:
    pid = parse(f"{MSH}\rPID|1||||O\\S\\Neil\\T\\Co^Maura").get("PID")
    assert pid is not None
    name = pid.field(5).first
    assert name.component(1) == "O^Neil&Co"
    assert name.component(2) == "Maura"


@pytest.mark.parametrize(
    ("text", "segment", "why"),
    [
        ("", None, "empty"),
        ("  \r\n ", None, "empty"),
        ("PID|1||123", "PID", "does not start with an MSH"),
        ("MSH|^~", "MSH", "too short"),
        ("MSH|^~\\|A|B", "MSH", "4 or 5"),
        ("MSH|^^\\&|A|B", "MSH", "repeat"),
        ("MSH|^~a&|A|B", "MSH", "punctuation"),
        ("MSH|^~\\&&#x|A", "MSH", "4 or 5"),
    ],
)
def test_unreadable_messages(text: str, segment: str | None, why: str) -> None:
    with pytest.raises(UnreadableMessage) as info:
        parse(text)
    assert why in str(info.value)
    assert info.value.segment == segment
    assert info.value.ack_code == "AR"


@pytest.mark.parametrize(
    ("msh9", "msh10", "field"),
    [("", "C1", 9), ("ADT", "C1", 9), ("^A01", "C1", 9), ("ADT^A01", "", 10),
     ("ADT^A01", '""', 10)],
)
def test_header_requires_msh_9_and_msh_10(msh9: str, msh10: str, field: int) -> None:
    msg = parse(f"MSH|^~\\&|A|B|C|D|20240101||{msh9}|{msh10}|P|2.5\rPID|1")
    assert msg.get("PID") is not None  # parsing succeeds: a NAK can still be built
    with pytest.raises(RequiredFieldMissing) as info:
        _ = msg.header
    assert (info.value.segment, info.value.field) == ("MSH", field)
    assert info.value.location == f"MSH-{field}"
