"""Intake against a real SQLite spool: charset, envelope checks, refusals kept, duplicates."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

import mappers
from gateway.ack import ack_code_of
from gateway.config import ListenerSettings
from gateway.intake import Intake, event_id
from gateway.metrics import GatewayMetrics
from gateway.mllp.client import split_messages
from gateway.spool import Spool

A01 = split_messages(Path("samples/adt_a01.hl7").read_bytes())[0]


def err3(ack: bytes) -> str:
    """The HL7 0357 code of the ACK's ERR: ERR-3 from 2.5 on, ERR-1.4 (ELD) before."""
    fields = next(s for s in ack.decode("latin-1").split("\r") if s.startswith("ERR")).split("|")
    if len(fields) == 2:
        return fields[1].split("^")[3].split("&")[0]
    return fields[3].split("^")[0]


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    s = Spool(tmp_path / "spool.db")
    await s.start()
    yield s
    await s.stop()


def intake(spool: Spool, **listener: object) -> Intake:
    return Intake(ListenerSettings(name="t", **listener), spool, GatewayMetrics())  # type: ignore[arg-type]


async def test_accepted_message_is_stored_with_bundle_and_ack(spool: Spool) -> None:
    result = await intake(spool).handle(A01, "1.2.3.4:5")
    assert result.code == "AA"
    assert ack_code_of(result.ack.decode()) == "AA"
    rows = await spool.pending()
    assert len(rows) == 1
    bundle = orjson.loads(rows[0].payload)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    assert rows[0].patient_key == mappers.convert(A01.decode()).patient_key
    assert rows[0].message_type == "ADT^A01"


async def test_event_id_is_stable_and_content_sensitive() -> None:
    assert event_id("A|B", "1", "x") == event_id("A|B", "1", "x")
    assert event_id("A|B", "1", "x") != event_id("A|B", "1", "y")
    assert event_id("A|B", "1", "x") != event_id("A|C", "1", "x")


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
    bundle = orjson.loads((await spool.pending())[0].payload)
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    assert patient["name"][0]["family"] == "Müller"


async def test_undecodable_bytes_get_ae_102_and_are_kept(tmp_path: Path, spool: Spool) -> None:
    broken = A01.replace(b"Everyman^Adam", b"M\xfcller^Adam")  # not UTF-8, declared UTF-8
    result = await intake(spool).handle(broken, "p")
    assert (result.code, err3(result.ack)) == ("AE", "102")
    assert "utf-8" in result.ack.decode()
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

    monkeypatch.setattr(mappers, "convert", broken)
    result = await intake(spool).handle(A01, "p")
    assert (result.code, err3(result.ack)) == ("AE", "207")
    assert (await spool.counts())["rejected"] == 1


async def test_empty_frame_is_ar(spool: Spool) -> None:
    result = await intake(spool).handle(b"", "p")
    assert result.code == "AR"
