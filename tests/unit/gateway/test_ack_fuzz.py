"""Fuzzing intake's answer: for any frame, one ACK that parses as HL7 and frames as one block.

Intake runs for real (envelope sniffer, ``gateway.prepare``, the mapper's check, the ACK
builder, batches) over an in-memory stand-in for the spool. Whatever the frame holds, the
answer must parse with the tokenizer, start with an MSH whose delimiters are the sender's
sane ones or the standard ``|^~\\&``, carry an MSA with a valid code, and pass through MLLP
framing as exactly one frame (no 0x0B or 0x1C inside). Settings and seeds:
tests/support/fuzz.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.config import ListenerSettings
from gateway.intake import Intake
from gateway.metrics import GatewayMetrics
from gateway.mllp.framing import FrameDecoder, encode_frame
from gateway.spool import Accepted, Rejected, StoreOutcome
from mappers import parse
from mappers.hl7v2.envelope import sane_delimiters
from tests.support import sample_path
from tests.support.fuzz import fuzz, fuzz_settings

pytestmark = fuzz

SAMPLE = sample_path("adt_a01").read_bytes().replace(b"\r\n", b"\r").split(b"\n")[0]
CODES = {"AA", "AE", "AR", "CA", "CE", "CR"}
ATOMS = st.sampled_from([
    b"|", b"^", b"~", b"\\", b"&", b"#", b"\r", b"\n", b"\x0b", b"\x1c", b"\x00", b"\x7f",
    b"\xfc", b"\xb2", b"\xc2\xb2", b"\xef\xbb\xbf", b"\xff\xfe", b"MSH", b"BHS|^~\\&|A",
    b"BTS|", b"BTS|\xc2\xb2", b"FHS|^~\\&", b"2.5.1", b"2.\xc2\xb2", b"AL", b"NE", b"ER",
    b"8859/1", b"UNICODE UTF-16", b"ADT^A01", b"\\X1C\\", b" "])
PIECES = st.lists(ATOMS | st.binary(max_size=4), max_size=16).map(b"".join)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """The sample with a few pieces spliced in at drawn places (mostly in MSH)."""
    raw = SAMPLE
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, min(len(raw), 200)))
        cut = draw(st.integers(0, 3))
        raw = raw[:at] + draw(PIECES) + raw[at + cut:]
    return raw


FRAMES = st.one_of(mutated(), PIECES, st.binary(max_size=64))


class MemorySpool:
    """Keeps rows in a list: enough for intake's store and capacity check."""

    pending_rows = 0

    def __init__(self) -> None:
        self.rows: list[Accepted | Rejected] = []

    async def store(self, row: Accepted | Rejected) -> StoreOutcome:
        self.rows.append(row)
        status = "rejected" if isinstance(row, Rejected) else "stored"
        return StoreOutcome(status, len(self.rows), row.ack)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    yield running
    running.close()


def check_answer(ack: bytes) -> None:
    """One MLLP frame, an HL7 message with sane delimiters and a valid MSA-1."""
    assert b"\x0b" not in ack and b"\x1c" not in ack
    assert FrameDecoder().feed(encode_frame(ack)) == [ack]
    text = ack.decode("utf-16" if ack[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8")
    assert text.startswith("MSH") and sane_delimiters(text[3], text[4:8])
    message = parse(text)
    msa = message.get("MSA")
    assert msa is not None and msa.field(1).value in CODES, text
    for seg in message.segments:
        assert seg.id.isascii() and len(seg.id) == 3, text


@fuzz_settings(1500)
@given(frame=FRAMES)
@example(frame=SAMPLE)
@example(frame=SAMPLE.replace(b"|", b"\xfc", 12))  # 16.1: MSH-1 not ASCII
@example(frame=SAMPLE.replace(b"|", b"\r", 12))
@example(frame=b"MSH|^~\\&|A|F|R|R|20240601120500||ADT^A08|X-1|P|2.3\x1c")  # 16.2
@example(frame=SAMPLE.replace(b"|2.5.1|", b"|2.\xb2|", 1))  # 16.3
@example(frame=b"BHS|^~\\&|A\r" + SAMPLE + b"BTS|\xb2\r")
def test_every_frame_gets_one_well_formed_answer(loop: asyncio.AbstractEventLoop,
                                                frame: bytes) -> None:
    spool = MemorySpool()
    intake = Intake(ListenerSettings(name="fuzz"), spool, GatewayMetrics())  # type: ignore[arg-type]
    result = loop.run_until_complete(intake.handle(frame, "fuzz"))
    assert spool.rows  # stored, or kept as refused: nothing lost
    if result.ack is None:  # the sender asked for no answer (enhanced mode, NE/ER/SU)
        return
    check_answer(result.ack)
