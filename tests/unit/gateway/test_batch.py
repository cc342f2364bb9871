"""Batches: split, count check, one ACK or an ACK batch, each message spooled on its own."""

from __future__ import annotations

from gateway.ack import ack_code_of
from gateway.batch import split_batch
from gateway.config import ListenerSettings
from gateway.intake import Intake
from gateway.metrics import GatewayMetrics
from gateway.mllp.client import split_messages
from gateway.spool import Spool
from tests.support import SAMPLES

SAMPLE = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0].decode()


def message(control_id: str, *, good: bool = True) -> str:
    first, rest = SAMPLE.split("\r", 1)
    fields = first.split("|")
    fields[9] = control_id
    fields[14] = fields[15] = ""  # original mode
    if not good:
        fields[8] = "ZZZ^Z01"
    return "|".join(fields) + "\r" + rest


def batch(*messages: str, count: int | None = None) -> str:
    n = len(messages) if count is None else count
    return ("FHS|^~\\&|LAB|HOSP|HL7GW|HUB|20240101||||F1\r"
            "BHS|^~\\&|LAB|HOSP|HL7GW|HUB|20240101||||B1\r"
            + "".join(messages) + f"BTS|{n}\rFTS|1\r")


def test_split_keeps_each_message_whole() -> None:
    b = split_batch(batch(message("M1"), message("M2")))
    assert [m.split("\r")[0].split("|")[9] for m in b.messages] == ["M1", "M2"]
    assert b.control_id == "B1"
    assert b.error is None
    assert b.messages[0] == message("M1")


def test_count_mismatch_is_an_error() -> None:
    b = split_batch(batch(message("M1"), count=2))
    assert b.error is not None
    assert (b.error.ack_code, b.error.err_code) == ("AR", "100")


def test_lf_separated_batch_is_split() -> None:
    b = split_batch(batch(message("M1"), message("M2")).replace("\r", "\n"))
    assert len(b.messages) == 2


async def test_batch_ack_aa_and_every_message_spooled(spool: Spool) -> None:
    gate = Intake(ListenerSettings(name="b"), spool, GatewayMetrics())
    result = await gate.handle(batch(message("M1"), message("M2")).encode(), "p")
    text = (result.ack or b"").decode()
    assert ack_code_of(text) == "AA"
    assert text.split("\r")[1].split("|")[2] == "B1"  # MSA-2 = BHS-11
    assert [r.control_id for r in await spool.pending()] == ["M1", "M2"]


async def test_one_bad_message_gives_ae_with_its_err(spool: Spool) -> None:
    gate = Intake(ListenerSettings(name="b"), spool, GatewayMetrics())
    result = await gate.handle(
        batch(message("M1"), message("M2", good=False), message("M3")).encode(), "p")
    text = (result.ack or b"").decode()
    assert ack_code_of(text) == "AE"
    errs = [s for s in text.split("\r") if s.startswith("ERR")]
    assert len(errs) == 1 and "message 2 (MSH-10 M2)" in errs[0]
    assert [r.control_id for r in await spool.pending()] == ["M1", "M3"]
    assert (await spool.counts())["rejected"] == 1


async def test_count_mismatch_refuses_the_whole_batch(spool: Spool) -> None:
    gate = Intake(ListenerSettings(name="b"), spool, GatewayMetrics())
    result = await gate.handle(batch(message("M1"), count=5).encode(), "p")
    assert ack_code_of((result.ack or b"").decode()) == "AR"
    assert await spool.depth() == 0


async def test_messages_mode_answers_with_an_ack_batch(spool: Spool) -> None:
    gate = Intake(ListenerSettings(name="b", batch_ack="messages"), spool, GatewayMetrics())
    result = await gate.handle(batch(message("M1"), message("M2", good=False)).encode(), "p")
    segments = (result.ack or b"").decode().split("\r")
    assert segments[0].startswith("BHS|")
    msas = [s.split("|")[1:3] for s in segments if s.startswith("MSA")]
    assert msas == [["AA", "M1"], ["AR", "M2"]]
    assert "BTS|2" in segments


async def test_resent_batch_is_not_stored_twice(spool: Spool) -> None:
    gate = Intake(ListenerSettings(name="b"), spool, GatewayMetrics())
    frame = batch(message("M1"), message("M2")).encode()
    await gate.handle(frame, "p")
    again = await gate.handle(frame, "p")
    assert ack_code_of((again.ack or b"").decode()) == "AA"
    assert await spool.depth() == 2
