"""gateway.prepare: the one path from bytes to a Bundle, and intake's answer to a failing spool."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ack import ack_code_of
from gateway.config import ListenerSettings, SenderSettings
from gateway.errors import SpoolError
from gateway.intake import Intake, StoreFailed
from gateway.metrics import GatewayMetrics
from gateway.prepare import (
    AUTO,
    UndecodableMessage,
    choose_charset,
    convert,
    describe,
    prepare,
    prepare_text,
)
from gateway.spool import Accepted, Rejected, StoreOutcome
from mappers.errors import RequiredFieldMissing, UnreadableMessage
from mappers.hl7v2.envelope import sniff
from mappers.profiles import ProfileSet
from tests.support.messages import (
    GAGNE_LATIN1,
    PROFILE_YAML,
    gagne_variants,
    patient_family,
)

PROFILES = ProfileSet.from_sources({"gagne.yaml": PROFILE_YAML})


@pytest.mark.parametrize("name", sorted(gagne_variants()))
def test_every_encoding_of_the_sample_maps_to_gagne(name: str) -> None:
    raw = gagne_variants()[name]
    prepared = prepare(raw, profiles=PROFILES)
    assert patient_family(convert(prepared).bundle) == "Gagné"


def test_msh18_decides_when_nothing_else_does() -> None:
    prepared = prepare(GAGNE_LATIN1)
    assert prepared.charset == "latin-1"
    assert prepared.timezone == "UTC"


def test_precedence_profile_then_sender_then_msh18_then_default() -> None:
    sniffed = sniff(GAGNE_LATIN1)
    profile = PROFILES.profiles[0]
    assert choose_charset(sniffed, profile, "ascii", "utf-8") == profile.charset
    assert choose_charset(sniffed, None, "cp1252", "utf-8") == "cp1252"
    assert choose_charset(sniffed, None, None, "utf-8") == "latin-1"
    assert choose_charset(sniff(b"MSH|^~\\&|A\r"), None, None, "ascii") == "ascii"


def test_a_byte_order_mark_outranks_every_setting() -> None:
    raw = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\r".encode("utf-16")
    assert prepare(raw, charset="latin-1", default_charset="ascii").charset == "utf-16"


def test_the_profile_wins_over_the_sender_level_zone_and_charset() -> None:
    prepared = prepare(GAGNE_LATIN1.replace(b"|ADTSYS|", b"|GAGNE|"), profiles=PROFILES,
                       charset="utf-8", timezone="Asia/Tokyo")
    assert prepared.profile is not None
    assert (prepared.charset, prepared.timezone) == ("latin-1", "America/Montreal")


def test_strict_decoding_refuses_naming_charset_and_offset() -> None:
    with pytest.raises(UndecodableMessage, match="not valid utf-8 at offset"):
        prepare(GAGNE_LATIN1, charset="utf-8")
    assert "Gagn\ufffd" in prepare(GAGNE_LATIN1, charset="utf-8", errors="replace").text


def test_empty_bytes_are_unreadable() -> None:
    with pytest.raises(UnreadableMessage):
        prepare(b" \r\n")


def test_text_takes_the_same_profile_and_zone() -> None:
    text = GAGNE_LATIN1.replace(b"|ADTSYS|", b"|GAGNE|").decode("latin-1")
    prepared = prepare_text(text, profiles=PROFILES, default_timezone="UTC")
    assert prepared.profile is PROFILES.profiles[0]
    assert prepared.timezone == "America/Montreal"
    assert prepare_text(text, profiles=PROFILES, profile=None).profile is None
    assert AUTO is not None


def test_describe_names_class_location_and_text() -> None:
    exc = RequiredFieldMissing("PID-3 is empty", segment="PID", sequence=2, field=3)
    assert describe(exc) == "RequiredFieldMissing at PID-3: PID-3 is empty"
    assert describe(UnreadableMessage("no MSH")) == "UnreadableMessage: no MSH"
    assert describe(ValueError("two\nlines")) == "ValueError: two"


# -- a spool that cannot store (disk full): AE/CE 207, no exception ---------------------


class FailingSpool:
    """Stands in for a spool whose disk is full: every store raises SpoolError."""

    pending_rows = 0

    def __init__(self) -> None:
        self.tried: list[Accepted | Rejected] = []

    async def store(self, row: Accepted | Rejected) -> StoreOutcome:
        self.tried.append(row)
        raise SpoolError("database or disk is full")


SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "adt_a01.hl7"


def _original_mode(raw: bytes) -> bytes:
    first, rest = raw.split(b"\r", 1)
    fields = first.split(b"|")
    fields[14:16] = [b"", b""]
    return b"|".join(fields) + b"\r" + rest


@pytest.mark.parametrize(("mode", "expected"), [("original", "AE"), ("enhanced", "CE")])
async def test_a_failing_spool_answers_207_and_does_not_raise(mode: str, expected: str) -> None:
    from gateway.mllp.client import split_messages

    raw = split_messages(SAMPLE.read_bytes())[0]  # asks for enhanced mode (MSH-15 AL)
    if mode == "original":
        raw = _original_mode(raw)
    spool = FailingSpool()
    intake = Intake(ListenerSettings(name="t"), spool, GatewayMetrics())  # type: ignore[arg-type]
    result = await intake.handle(raw, "127.0.0.1:1")
    assert result.code == expected
    assert result.ack is not None
    text = result.ack.decode()
    assert ack_code_of(text) == expected
    err = next(s for s in text.split("\r") if s.startswith("ERR")).split("|")
    assert err[3].split("^")[0] == "207"
    assert "could not store" in text and "resend" in text
    assert [type(r) for r in spool.tried] == [Accepted]  # no try to keep the refusal
    assert result.outcome is None
    assert StoreFailed.ack_code == "AE"


async def test_sender_entry_charset_reaches_the_row() -> None:
    stored: list[Accepted | Rejected] = []

    class Keeping(FailingSpool):
        async def store(self, row: Accepted | Rejected) -> StoreOutcome:
            stored.append(row)
            return StoreOutcome("stored", 1, b"")

    listener = ListenerSettings(name="t", senders=[SenderSettings(
        application="ADTSYS", charset="cp1252", default_timezone="Europe/Paris")])
    intake = Intake(listener, Keeping(), GatewayMetrics())  # type: ignore[arg-type]
    result = await intake.handle(GAGNE_LATIN1, "p")
    assert result.code == "AA"
    [row] = stored
    assert isinstance(row, Accepted)
    assert (row.charset, row.timezone) == ("cp1252", "Europe/Paris")


async def test_the_ack_echoes_non_ascii_sender_fields_as_sent() -> None:
    stored: list[Accepted | Rejected] = []

    class Keeping(FailingSpool):
        async def store(self, row: Accepted | Rejected) -> StoreOutcome:
            stored.append(row)
            return StoreOutcome("stored", 1, row.ack)

    from gateway.mllp.client import split_messages

    raw = _original_mode(split_messages(SAMPLE.read_bytes())[0]).replace(
        b"|EPICADT|", "|CAFÉ|".encode(), 1)  # UTF-8, as MSH-18 says
    intake = Intake(ListenerSettings(name="t"), Keeping(), GatewayMetrics())  # type: ignore[arg-type]
    result = await intake.handle(raw, "p")
    assert result.ack is not None
    assert result.ack.decode("utf-8").split("\r")[0].split("|")[4] == "CAFÉ"
