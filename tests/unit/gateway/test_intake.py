"""Intake against a real SQLite spool: charset, envelope checks, refusals kept, duplicates."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import mappers
from gateway.ack import ack_code_of
from gateway.config import ListenerSettings
from gateway.intake import Intake, event_id
from gateway.metrics import GatewayMetrics
from gateway.mllp.client import split_messages
from gateway.spool import Spool
from tests.support import SAMPLES, with_msh

SAMPLE = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]


# The sample asks for enhanced mode (MSH-15 AL, MSH-16 NE); most tests use original mode.
A01 = with_msh(SAMPLE, f15="", f16="")


def err3(ack: bytes) -> str:
    """The HL7 0357 code of the ACK's ERR: ERR-3 from 2.5 on, ERR-1.4 (ELD) before."""
    fields = next(s for s in ack.decode("latin-1").split("\r") if s.startswith("ERR")).split("|")
    if len(fields) == 2:
        return fields[1].split("^")[3].split("&")[0]
    return fields[3].split("^")[0]


def intake(spool: Spool, **listener: object) -> Intake:
    return Intake(ListenerSettings(name="t", **listener), spool, GatewayMetrics())  # type: ignore[arg-type]


async def test_accepted_message_is_stored_with_bundle_and_ack(spool: Spool) -> None:
    result = await intake(spool).handle(A01, "1.2.3.4:5")
    assert result.code == "AA"
    assert ack_code_of(result.ack.decode()) == "AA"
    rows = await spool.pending()
    assert len(rows) == 1
    assert rows[0].raw == A01  # the bytes as received; mapping happens after the ACK
    assert rows[0].message_type == "ADT^A01"
    assert (rows[0].charset, rows[0].timezone) == ("utf-8", "UTC")


async def test_event_id_is_stable_and_content_sensitive() -> None:
    assert event_id("A|B", "1", "x") == event_id("A|B", "1", "x")
    assert event_id("A|B", "1", "x") != event_id("A|B", "1", "y")
    assert event_id("A|B", "1", "x") != event_id("A|C", "1", "x")


def test_event_id_is_the_uuid_of_the_digest_as_before() -> None:
    import hashlib
    import uuid

    for n in range(50):
        digest = hashlib.sha256(f"A|B\x1f{n}\x1fsha".encode()).digest()
        assert event_id("A|B", str(n), "sha") == str(uuid.UUID(bytes=digest[:16]))


def test_ack_timestamps_are_the_current_second() -> None:
    import time
    from datetime import UTC, datetime

    from gateway.ack import hl7_timestamp

    before = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    stamp = hl7_timestamp()
    after = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    assert before <= stamp <= after
    time.sleep(1.05)  # the cached text must move on with the clock
    assert hl7_timestamp() > stamp
    fixed = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert hl7_timestamp(fixed) == "20260102030405+0000"


async def test_resend_gets_original_ack_and_no_second_row(spool: Spool) -> None:
    gate = intake(spool)
    first = await gate.handle(A01, "p")
    again = await gate.handle(A01, "p")
    assert again.ack == first.ack
    assert again.outcome is not None and again.outcome.status == "duplicate"
    assert await spool.depth() == 1


async def test_stored_callback_fires_for_new_rows_only(spool: Spool) -> None:
    gate = intake(spool)
    calls: list[int] = []
    gate.on_stored(lambda: calls.append(1))
    await gate.handle(A01, "p")
    await gate.handle(A01, "p")
    assert calls == [1]


async def test_type_not_configured_for_listener_is_ar_200_or_201(spool: Spool) -> None:
    gate = intake(spool, message_types=["ADT^A04"])
    result = await gate.handle(A01, "p")
    assert result.code == "AR"
    assert err3(result.ack) == "201"  # ADT is accepted here, the A01 event is not
    other = await intake(spool).handle(A01.replace(b"ADT^A01^ADT_A01", b"ZZZ^Z01", 1), "p")
    assert (other.code, err3(other.ack)) == ("AR", "200")


async def test_processing_id_and_version_are_checked(spool: Spool) -> None:
    gate = intake(spool, processing_ids=["P"], versions=["2.5.1"])
    training = await gate.handle(A01.replace(b"|P|2.5.1|", b"|T|2.5.1|", 1), "p")
    assert (training.code, err3(training.ack)) == ("AR", "202")
    old = await gate.handle(A01.replace(b"|P|2.5.1|", b"|P|2.3|", 1), "p")
    assert (old.code, err3(old.ack)) == ("AR", "203")


async def test_msh18_latin1_is_decoded_as_declared(spool: Spool) -> None:
    latin = A01.replace(b"UNICODE UTF-8", b"8859/1").replace(b"Everyman^Adam", b"M\xfcller^Adam")
    result = await intake(spool).handle(latin, "p")
    assert result.code == "AA"
    row = (await spool.pending())[0]
    assert row.charset == "latin-1"
    assert "Müller" in row.raw.decode(row.charset)


async def test_undecodable_bytes_get_ae_102_and_are_kept(tmp_path: Path, spool: Spool) -> None:
    broken = A01.replace(b"Everyman^Adam", b"M\xfcller^Adam")  # not UTF-8, declared UTF-8
    result = await intake(spool).handle(broken, "p")
    assert (result.code, err3(result.ack)) == ("AE", "102")
    assert "utf-8" in result.ack.decode()
    await spool.flush()
    conn = sqlite3.connect(tmp_path / "spool.db")
    assert conn.execute("SELECT raw FROM rejected").fetchone()[0] == broken
    conn.close()
    assert await spool.depth() == 0


async def test_missing_patient_id_is_ae_101(spool: Spool) -> None:
    lines = A01.split(b"\r")
    pid = lines[2].split(b"|")
    pid[3] = b""
    lines[2] = b"|".join(pid)
    result = await intake(spool).handle(b"\r".join(lines), "p")
    assert (result.code, err3(result.ack)) == ("AE", "101")


async def test_a_mapping_bug_is_ae_207_not_a_crash(spool: Spool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(mappers, "check", broken)
    result = await intake(spool).handle(A01, "p")
    assert (result.code, err3(result.ack)) == ("AE", "207")
    assert (await spool.counts())["rejected"] == 1


@pytest.mark.parametrize(("msh15", "good", "bad"), [
    ("AL", "CA", "CR"),
    ("NE", None, None),
    ("ER", None, "CR"),
    ("SU", "CA", None),
    ("", "CA", "CR"),  # MSH-16 valued alone: enhanced mode, commit ACK always
])
async def test_enhanced_mode_follows_msh15(spool: Spool, msh15: str, good: str | None,
                                           bad: str | None) -> None:
    gate = intake(spool)
    ok = await gate.handle(with_msh(A01, f15=msh15, f16="AL"), "p")
    assert (ack_code_of(ok.ack.decode()) if ok.ack else None) == good
    refused = await gate.handle(with_msh(A01, f15=msh15, f16="AL", f9="ZZZ^Z01"), "p")
    assert (ack_code_of(refused.ack.decode()) if refused.ack else None) == bad
    assert await spool.depth() == 1  # stored whether or not an ACK was asked for


async def test_resend_in_ne_mode_stays_silent(spool: Spool) -> None:
    gate = intake(spool)
    message = with_msh(A01, f15="NE", f16="NE")
    assert (await gate.handle(message, "p")).ack is None
    again = await gate.handle(message, "p")
    assert again.ack is None and again.outcome is not None
    assert again.outcome.status == "duplicate"


async def test_spool_at_capacity_is_ae_and_not_stored(spool: Spool) -> None:
    gate = Intake(ListenerSettings(name="t"), spool, GatewayMetrics(), max_pending=2)
    for i in range(2):
        assert (await gate.handle(with_msh(A01, f10=f"C{i}"), "p")).code == "AA"
    full = await gate.handle(with_msh(A01, f10="C2"), "p")
    assert (full.code, err3(full.ack or b"")) == ("AE", "207")
    assert "resend later" in (full.ack or b"").decode()
    assert await spool.depth() == 2
    assert (await spool.counts())["rejected"] == 0  # nothing kept: there is no room


async def test_sender_charset_wins_over_msh18(spool: Spool) -> None:
    from gateway.config import SenderSettings

    latin = A01.replace(b"Everyman^Adam", b"M\xfcller^Adam")  # MSH-18 says UTF-8: a lie
    lying = intake(spool, senders=[SenderSettings(application="EPICADT", charset="latin-1")])
    assert (await lying.handle(latin, "p")).code == "AA"
    other = intake(spool, senders=[SenderSettings(application="OTHER", charset="latin-1")])
    assert (await other.handle(with_msh(latin, f10="X2"), "p")).code == "AE"


async def test_empty_frame_is_ar(spool: Spool) -> None:
    result = await intake(spool).handle(b"", "p")
    assert result.code == "AR"
