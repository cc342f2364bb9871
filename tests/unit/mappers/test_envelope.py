"""The MSH envelope read from bytes: byte layouts, MSH-18, and delimiters it refuses."""

from __future__ import annotations

import pytest

from mappers.hl7v2.envelope import DEFAULT_ENCODING, sniff, sniff_text

MSH = "MSH|^~\\&|APP^1.2^ISO|FAC|GW|HUB|20240601120000||ADT^A01^ADT_A01|C1|P|2.5.1|||AL|NE||{}\r"


@pytest.mark.parametrize(("raw", "layout"), [
    (MSH.format("").encode(), ""),
    (b"\xef\xbb\xbf" + MSH.format("").encode(), "utf-8"),
    (MSH.format("").encode("utf-16"), "utf-16"),
    (MSH.format("UNICODE UTF-16").encode("utf-16-le"), "utf-16-le"),
    (MSH.format("UNICODE UTF-16").encode("utf-16-be"), "utf-16-be"),
    (("\r\n" + MSH.format("UNICODE UTF-16")).encode("utf-16-be"), "utf-16-be"),
])
def test_every_layout_reads_the_same_envelope(raw: bytes, layout: str) -> None:
    sniffed = sniff(raw)
    assert sniffed.layout == layout
    env = sniffed.envelope
    assert (env.sending_application, env.control_id, env.version) == ("APP^1.2^ISO", "C1",
                                                                      "2.5.1")
    assert env.sender_key == ("APP", "FAC", "2.5.1")
    assert (env.accept_ack_type, env.application_ack_type) == ("AL", "NE")


@pytest.mark.parametrize(("msh18", "codec"), [
    ("8859/1", "latin-1"), ("UNICODE UTF-8~8859/1", "utf-8"), (" cp1252 ", "cp1252"),
    ("", ""), ("KLINGON", "")])
def test_msh18_names_the_codec(msh18: str, codec: str) -> None:
    assert sniff(MSH.format(msh18).encode()).declared == codec


@pytest.mark.parametrize("first", [
    "MSH\xfc^~\\&\xfcA\xfcB",  # MSH-1 not ASCII
    "MSH\r^~\\&\rA",  # CR as MSH-1: the first line is "MSH"
    "MSHA^~\\&AB",  # a letter
    "MSH^~\\\x0b&^A",  # MSH-2 unusable, and MSH-1 is a standard encoding character
    "PID|1",  # not MSH at all
])
def test_unusable_delimiters_give_the_standard_ones_and_no_fields(first: str) -> None:
    env = sniff(first.encode("latin-1")).envelope
    assert (env.field_sep, env.encoding_chars) == ("|", DEFAULT_ENCODING)
    assert env.sending_application == env.control_id == ""


def test_a_sane_separator_with_broken_encoding_characters_still_reads_fields() -> None:
    env = sniff_text("MSH#^~\\\x0b#APP#FAC#GW#HUB#2024##ADT^A01#C9#P#2.5\r").envelope
    assert (env.field_sep, env.encoding_chars) == ("#", DEFAULT_ENCODING)
    assert (env.sending_application, env.control_id) == ("APP", "C9")


def test_custom_sane_delimiters_are_kept() -> None:
    env = sniff_text("MSH#$%*@#APP$X#FAC#GW#HUB#2024##ADT$A01#C9#P#2.5\r").envelope
    assert (env.field_sep, env.encoding_chars, env.trigger_event) == ("#", "$%*@", "A01")
    assert env.sender_key == ("APP", "FAC", "2.5")


def test_a_batch_is_flagged_and_left_to_the_batch_reader() -> None:
    assert sniff(b"\r\nBHS|^~\\&|A\r").batch
    assert not sniff(MSH.format("").encode()).batch


def test_blank_lines_before_msh_are_skipped() -> None:
    assert sniff(b"\r\n\r\n" + MSH.format("").encode()).envelope.control_id == "C1"
