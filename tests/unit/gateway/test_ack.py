"""ACK building: AR vs AE, ERR segments per version, echo of MSH fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.ack import Envelope, ack_code_of, build_ack, escape, sniff_envelope
from mappers.errors import (
    MessageError,
    RequiredFieldMissing,
    UnreadableMessage,
    UnsupportedEvent,
    UnsupportedMessageType,
    UnsupportedProcessingId,
    UnsupportedVersion,
)

MSH = "MSH|^~\\&|LAB|HOSP|HL7GW|HUB|20261126120000||ADT^A01^ADT_A01|MSG0001|P|2.5.1"
NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def segments(ack: str) -> dict[str, list[str]]:
    return {seg[:3]: seg.split("|") for seg in ack.split("\r") if seg}


def test_sniff_reads_the_envelope() -> None:
    env = sniff_envelope(MSH + "\rPID|1\r")
    assert (env.sending_application, env.sending_facility) == ("LAB", "HOSP")
    assert (env.receiving_application, env.receiving_facility) == ("HL7GW", "HUB")
    assert env.control_id == "MSG0001"
    assert env.trigger_event == "A01"
    assert env.version == "2.5.1"


@pytest.mark.parametrize("text", ["", "garbage", "PID|1|2", "MSH", "\ufeff"])
def test_sniff_never_raises(text: str) -> None:
    assert isinstance(sniff_envelope(text), Envelope)


def test_aa_swaps_sender_and_receiver_and_echoes_control_id() -> None:
    ack = build_ack(sniff_envelope(MSH), "AA", ack_control_id="A1", now=NOW)
    seg = segments(ack)
    assert seg["MSH"][2:6] == ["HL7GW", "HUB", "LAB", "HOSP"]
    assert seg["MSH"][6] == "20261126120000+0000"
    assert seg["MSH"][8] == "ACK^A01^ACK"
    assert seg["MSH"][9] == "A1"
    assert seg["MSA"] == ["MSA", "AA", "MSG0001"]
    assert "ERR" not in seg
    assert ack_code_of(ack) == "AA"


# The AR/AE decision, table-driven: envelope problems are AR, content problems AE.
@pytest.mark.parametrize(("error", "code", "err"), [
    (UnreadableMessage("no MSH"), "AR", "100"),
    (UnsupportedMessageType("type"), "AR", "200"),
    (UnsupportedEvent("event"), "AR", "201"),
    (UnsupportedProcessingId("pid"), "AR", "202"),
    (UnsupportedVersion("ver"), "AR", "203"),
    (RequiredFieldMissing("PID-3 empty", segment="PID", sequence=2, field=3), "AE", "101"),
    (MessageError("boom"), "AE", "207"),
])
def test_nak_code_and_err_segment(error: MessageError, code: str, err: str) -> None:
    ack = build_ack(sniff_envelope(MSH), error.ack_code, ack_control_id="A1", error=error)
    seg = segments(ack)
    assert seg["MSA"][1] == code
    assert seg["ERR"][3].split("^")[0] == err
    assert seg["ERR"][3].split("^")[2] == "HL70357"
    assert seg["ERR"][4] == "E"
    assert seg["ERR"][8] == str(error)


def test_err_location_for_v25() -> None:
    error = RequiredFieldMissing("PID-3 empty", segment="PID", sequence=2, field=3)
    ack = build_ack(sniff_envelope(MSH), "AE", ack_control_id="A1", error=error)
    assert segments(ack)["ERR"][2] == "PID^2^3"


def test_err_uses_eld_before_v25() -> None:
    env = sniff_envelope(MSH.replace("|2.5.1", "|2.3"))
    error = RequiredFieldMissing("PID-3 empty", segment="PID", sequence=2, field=3)
    ack = build_ack(env, "AE", ack_control_id="A1", error=error)
    assert segments(ack)["ERR"] == ["ERR", "PID^2^3^101&PID-3 empty&HL70357"]


def test_text_with_delimiters_is_escaped() -> None:
    env = Envelope()
    assert escape("a|b^c&d~e\\f", env) == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"
    ack = build_ack(env, "AE", ack_control_id="A1", error=MessageError("x|y"))
    assert segments(ack)["MSA"][3] == "x\\F\\y"


def test_nak_for_unreadable_bytes_still_parses() -> None:
    ack = build_ack(sniff_envelope("not hl7"), "AR", ack_control_id="A1",
                    error=UnreadableMessage("no MSH segment"))
    assert ack.startswith("MSH|^~\\&|")
    assert ack_code_of(ack) == "AR"
