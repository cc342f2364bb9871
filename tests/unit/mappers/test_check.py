"""Tests for ``mappers.check``: the pre-ACK check refuses exactly what ``convert`` refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

import mappers
from mappers import (
    Header,
    MessageError,
    RequiredFieldMissing,
    SegmentSequenceError,
    UnreadableMessage,
    UnsupportedEvent,
    UnsupportedMessageType,
    UnsupportedVersion,
    check,
    convert,
)
from tests.support import SAMPLES, sample_text
from tests.support import without as without_in
from tests.unit.mappers.accel import pure_only

A01 = sample_text("adt_a01")


def without(segment: str, text: str = A01) -> str:
    return without_in(segment, text)


def set_field(text: str, segment: str, n: int, value: str) -> str:
    lines = text.split("\r")
    for i, line in enumerate(lines):
        if line.startswith(segment + "|"):
            fields = line.split("|")
            fields += [""] * (n + 1 - len(fields))
            fields[n] = value
            lines[i] = "|".join(fields)
            break
    return "\r".join(lines)


A40 = ("MSH|^~\\&|EPICADT|GOODHEALTH|HL7GW|CLOUDFHIR|20240301120000||ADT^A40^ADT_A39|M1|P|2.5\r"
       "EVN|A40|20240301120000\r"
       "PID|1||4820017^^^GOODHEALTH^MR||Everyman^Adam\r"
       "MRG|4820099^^^GOODHEALTH^MR\r")

SIU = (SAMPLES / "messages" / "siu_s12.hl7").read_bytes().decode()
ORU = (SAMPLES / "messages" / "oru_r01.hl7").read_bytes().decode()

BAD = [
    ("not hl7", "PID|1||x\r", UnreadableMessage),
    ("empty", "", UnreadableMessage),
    ("bad encoding chars", A01.replace("MSH|^~\\&|", "MSH|^^|", 1), UnreadableMessage),
    ("unknown type", A01.replace("ADT^A01^ADT_A01", "ZZZ^Z01"), UnsupportedMessageType),
    ("unknown event", A01.replace("ADT^A01^ADT_A01", "ADT^A99"), UnsupportedEvent),
    ("no trigger", A01.replace("ADT^A01^ADT_A01", "ADT"), RequiredFieldMissing),
    ("no control id", set_field(A01, "MSH", 9, ""), RequiredFieldMissing),  # MSH-10 (shifted)
    ("old version", A01.replace("|2.5.1|", "|2.2|"), UnsupportedVersion),
    ("no version", A01.replace("|2.5.1|", "||"), RequiredFieldMissing),
    ("no PID", without("PID"), SegmentSequenceError),
    ("empty PID-3", set_field(A01, "PID", 3, ""), RequiredFieldMissing),
    ("null PID-3", set_field(A01, "PID", 3, '""'), RequiredFieldMissing),
    ("PID-3 without id", set_field(A01, "PID", 3, "^^^GOODHEALTH^MR"), RequiredFieldMissing),
    ("A40 without MRG", without("MRG", A40), SegmentSequenceError),
    ("A40 with empty MRG-1", set_field(A40, "MRG", 1, ""), RequiredFieldMissing),
    ("SIU without appointment ids", set_field(set_field(SIU, "SCH", 1, ""), "SCH", 2, ""),
     RequiredFieldMissing),
    ("ORU without OBR", without("OBR", ORU), SegmentSequenceError),
    ("ORU in v2.2", ORU.replace("|2.5.1|", "|2.2|"), UnsupportedVersion),
    ("ORU^R02", ORU.replace("ORU^R01^ORU_R01", "ORU^R02"), UnsupportedEvent),
]


@pytest.mark.parametrize(("name", "text", "error"), BAD, ids=[b[0] for b in BAD])
def test_check_and_convert_refuse_alike(name: str, text: str, error: type[MessageError]) -> None:
    with pytest.raises(MessageError) as by_convert:
        convert(text)
    with pytest.raises(MessageError) as by_check:
        check(text)
    assert type(by_convert.value) is error
    assert type(by_check.value) is type(by_convert.value)
    c, k = by_convert.value, by_check.value
    assert (k.segment, k.sequence, k.field, k.ack_code, k.err_code) == \
        (c.segment, c.sequence, c.field, c.ack_code, c.err_code)
    assert str(k) == str(c)


def test_required_identifier_error_names_segment_sequence_and_field() -> None:
    with pytest.raises(RequiredFieldMissing) as info:
        check(set_field(A01, "PID", 3, ""))
    assert (info.value.segment, info.value.sequence, info.value.field) == ("PID", 3, 3)
    with pytest.raises(RequiredFieldMissing) as merge:
        check(set_field(A40, "MRG", 1, ""))
    assert (merge.value.segment, merge.value.sequence, merge.value.field) == ("MRG", 4, 1)


@pytest.mark.parametrize("path", sorted([*SAMPLES.glob("*.hl7"), *SAMPLES.glob("messages/*.hl7")]),
                         ids=lambda p: p.stem)
def test_every_sample_passes_check_and_converts(path: Path) -> None:
    text = path.read_bytes().decode()
    header = check(text)
    assert isinstance(header, Header)
    assert header.message_type == convert(text).message_type


def test_check_accepts_what_convert_accepts_with_warnings() -> None:
    text = without("PV1")  # convert warns (missing-segment) but converts
    assert convert(text).issues
    assert check(text).control_id == "GH20240115103000001"


@pure_only
def test_check_builds_no_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    import mappers.conversion as conversion

    def boom(*args: object) -> None:
        raise AssertionError("check must not build resources")

    monkeypatch.setattr(conversion, "build_resource", boom)
    assert check(A01).message_type == "ADT^A01"
    with pytest.raises(AssertionError):
        convert(A01)


def test_check_refuses_an_unknown_time_zone_like_convert() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        check(A01, default_tz="Mars/Olympus_Mons")


def test_check_is_exported() -> None:
    assert "check" in mappers.__all__ and mappers.check is check
