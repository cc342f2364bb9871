"""The local EHR (gateway.dev.ehr.LocalEhr) over real sockets on 127.0.0.1.

Each test sends with the project's own MllpClient and reads the ACK frames back, so the
framing, the ACK's fields and the scripted faults are checked as a sender sees them.
Waits are deadlines (client timeouts, ``wait_for``), never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from gateway.dev.ehr import LocalEhr
from gateway.errors import ListenError
from gateway.mllp.client import MllpClient, MllpConnectionLost
from gateway.mllp.framing import VT, encode_frame

TIMEOUT = 10.0  # a client's wait for an ACK that must come (a loaded machine)
SHORT = 0.5  # a client's wait for an ACK that must not come


def oru(control_id: str, *, version: str = "2.5.1", msh18: str = "",
        obx: str = "glucose 5.4") -> bytes:
    """A small ORU^R01 as a results sender would send it back to the EHR."""
    text = "\r".join([
        f"MSH|^~\\&|HL7GW|CLOUD|EPIC|GOODHEALTH|20260115103000+0000||ORU^R01^ORU_R01|"
        f"{control_id}|P|{version}||||||{msh18}",
        "PID|1||4820017^^^GOODHEALTH^MR||Everyman^Adam",
        "OBR|1||R-1|2345-7^Glucose^LN",
        f"OBX|1|ST|2345-7^Glucose^LN||{obx}",
    ]) + "\r"
    return text.encode("latin-1" if msh18 == "8859/1" else "utf-8")


def segments(ack: bytes) -> dict[str, list[str]]:
    """An ACK's segments by name, each as its fields (index n = field n, MSH shifted)."""
    out: dict[str, list[str]] = {}
    for seg in ack.decode().split("\r"):
        if seg:
            fields = seg.split("|")
            if fields[0] == "MSH":
                fields.insert(1, "|")  # MSH-1 is the separator: MSH-n at index n
            out[fields[0]] = fields
    return out


@pytest.fixture
async def ehr() -> AsyncIterator[LocalEhr]:
    async with LocalEhr() as local:
        yield local


def client(ehr: LocalEhr, timeout: float = TIMEOUT) -> MllpClient:
    return MllpClient("127.0.0.1", ehr.port, timeout=timeout)


async def test_aa_ack_is_built_from_the_message(ehr: LocalEhr) -> None:
    async with client(ehr) as c:
        ack = await c.send(oru("CTL-1"))
        local_port = c._writer.get_extra_info("sockname")[1] if c._writer else 0
    seg = segments(ack)
    msh, msa = seg["MSH"], seg["MSA"]
    assert (msh[3], msh[4], msh[5], msh[6]) == ("EPIC", "GOODHEALTH", "HL7GW", "CLOUD")
    assert msh[9] == "ACK^R01^ACK"
    assert msh[10] and msh[10] != "CTL-1"
    assert (msh[11], msh[12]) == ("P", "2.5.1")
    assert msa[1:3] == ["AA", "CTL-1"]
    assert "ERR" not in seg
    [got] = ehr.received
    assert (got.control_id, got.message_type, got.ack_code) == ("CTL-1", "ORU^R01", "AA")
    assert got.raw == oru("CTL-1")
    assert got.peer == f"127.0.0.1:{local_port}"
    assert abs(got.at - time.time()) < 60


async def test_each_ack_has_its_own_control_id(ehr: LocalEhr) -> None:
    async with client(ehr) as c:
        ids = {segments(await c.send(oru(f"C{n}")))["MSH"][10] for n in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize(("mode", "err_code"), [("AE", "207"), ("AR", "200")])
async def test_ae_and_ar_carry_an_err_segment(mode: str, err_code: str) -> None:
    async with LocalEhr(ack=mode) as ehr, client(ehr) as c:
        seg = segments(await c.send(oru("CTL-2")))
    assert seg["MSA"][1:3] == [mode, "CTL-2"]
    assert seg["ERR"][3].split("^")[0] == err_code  # ERR-3 from 2.5 on
    assert ehr.received[0].ack_code == mode


async def test_err_before_2_5_uses_err_1(ehr: LocalEhr) -> None:
    ehr.ack = "AE"
    async with client(ehr) as c:
        seg = segments(await c.send(oru("OLD-1", version="2.3")))
    assert seg["MSH"][12] == "2.3"
    assert "207" in seg["ERR"][1] and len(seg["ERR"]) == 2


async def test_none_never_answers_and_keeps_the_connection(ehr: LocalEhr) -> None:
    ehr.ack = "none"
    async with client(ehr, timeout=SHORT) as c:
        with pytest.raises(MllpConnectionLost, match="no ACK within"):
            await c.send(oru("SILENT"))
        ehr.ack = "AA"
        c.timeout = TIMEOUT
        ack = await c.send(oru("HEARD"))  # same connection: it was kept
    assert segments(ack)["MSA"][1:3] == ["AA", "HEARD"]
    assert [r.ack_code for r in ehr.received] == [None, "AA"]


async def test_delay_is_honoured(ehr: LocalEhr) -> None:
    ehr.delay_ms = 300
    async with client(ehr) as c:
        began = time.monotonic()
        ack = await c.send(oru("SLOW"))
        took = time.monotonic() - began
    assert segments(ack)["MSA"][1] == "AA"
    assert 0.29 <= took < 30  # the lower bound is the point; the upper only catches a hang


async def test_script_then_back_to_the_default(ehr: LocalEhr) -> None:
    ehr.ack = "AR"
    ehr.script(["AE", "AA"])
    async with client(ehr) as c:
        codes = [segments(await c.send(oru(f"S{n}")))["MSA"][1] for n in range(3)]
    assert codes == ["AE", "AA", "AR"]


async def test_script_may_include_none(ehr: LocalEhr) -> None:
    ehr.script(["none"])
    async with client(ehr, timeout=SHORT) as c:
        with pytest.raises(MllpConnectionLost):
            await c.send(oru("N1"))
        c.timeout = TIMEOUT
        assert segments(await c.send(oru("N2")))["MSA"][1:3] == ["AA", "N2"]


async def test_stale_ack_comes_first_then_the_correct_one(ehr: LocalEhr) -> None:
    async with client(ehr) as c:
        await c.send(oru("FIRST"))
        ehr.stale_ack_next()
        stale = await c.send(oru("SECOND"))
        correct = await c.read_ack()
        after = await c.send(oru("THIRD"))  # one-shot: back to normal
    assert segments(stale)["MSA"][1:3] == ["AA", "FIRST"]
    assert segments(correct)["MSA"][1:3] == ["AA", "SECOND"]
    assert segments(after)["MSA"][1:3] == ["AA", "THIRD"]
    second = ehr.received[1]
    assert (second.stale_ack_for, second.ack_code) == ("FIRST", "AA")


async def test_stale_ack_only(ehr: LocalEhr) -> None:
    ehr.ack = "AE"
    async with client(ehr, timeout=SHORT) as c:
        await c.send(oru("FIRST"))
        ehr.stale_ack_next(then_correct=False)
        stale = await c.send(oru("SECOND"))
        with pytest.raises(MllpConnectionLost, match="no ACK within"):
            await c.read_ack()
    assert segments(stale)["MSA"][1:3] == ["AA", "FIRST"]
    assert ehr.received[1].ack_code is None
    assert ehr.received[1].stale_ack_for == "FIRST"


async def test_stale_ack_precedes_a_delayed_correct_ack(ehr: LocalEhr) -> None:
    async with client(ehr) as c:
        await c.send(oru("FIRST"))
        ehr.delay_ms = 300
        ehr.stale_ack_next()
        began = time.monotonic()
        stale = await c.send(oru("SECOND"))
        correct = await c.read_ack()
        took = time.monotonic() - began
    assert segments(stale)["MSA"][2] == "FIRST"
    assert segments(correct)["MSA"][2] == "SECOND"
    assert took >= 0.29


async def test_stale_ack_for_the_very_first_message_has_an_empty_msa_2(ehr: LocalEhr) -> None:
    ehr.stale_ack_next()
    async with client(ehr) as c:
        stale = await c.send(oru("ONLY"))
        correct = await c.read_ack()
    assert segments(stale)["MSA"][1:3] == ["AA", ""]
    assert segments(correct)["MSA"][1:3] == ["AA", "ONLY"]


async def test_drop_closes_the_connection_without_answering(ehr: LocalEhr) -> None:
    ehr.drop_next()
    async with client(ehr) as c:
        with pytest.raises(MllpConnectionLost, match="closed by the peer"):
            await c.send(oru("DROPPED"))
        await c.reconnect()
        ack = await c.send(oru("AGAIN"))  # one-shot: the next connection is served
    assert segments(ack)["MSA"][1:3] == ["AA", "AGAIN"]
    assert [(r.control_id, r.ack_code) for r in ehr.received] == [
        ("DROPPED", None), ("AGAIN", "AA")]


async def test_wait_for_returns_what_arrived(ehr: LocalEhr) -> None:
    async def send_two() -> None:
        async with client(ehr) as c:
            await c.send(oru("W1"))
            await c.send(oru("W2"))

    sender = asyncio.create_task(send_two())
    got = await ehr.wait_for(2, timeout=TIMEOUT)
    await sender
    assert [r.control_id for r in got[:2]] == ["W1", "W2"]


async def test_wait_for_times_out_with_a_clear_message(ehr: LocalEhr) -> None:
    async with client(ehr) as c:
        await c.send(oru("ONE"))
    began = time.monotonic()
    with pytest.raises(TimeoutError, match=r"received 1 of 2 messages within 0.2 s"):
        await ehr.wait_for(2, timeout=0.2)
    assert time.monotonic() - began >= 0.19


async def test_printing_shows_the_message_and_the_ack_code() -> None:
    lines: list[str] = []
    async with LocalEhr(out=lines.append) as ehr, client(ehr) as c:
        await c.send(oru("P1"))
    peer = ehr.received[0].peer
    block = "\n".join(lines).split("\n")
    assert block == [
        f"<- ORU^R01 control id P1 from {peer}",
        *oru("P1").decode().rstrip("\r").split("\r"),
        "-> AA",
    ]


async def test_printing_names_the_message_when_its_ack_comes_late() -> None:
    lines: list[str] = []
    async with LocalEhr(out=lines.append, delay_ms=300) as ehr, \
            client(ehr) as slow, client(ehr) as fast:
        slow_ack = asyncio.create_task(slow.send(oru("LATE")))
        await ehr.wait_for(1, timeout=TIMEOUT)
        ehr.delay_ms = 0
        await fast.send(oru("QUICK"))
        await slow_ack
    text = "\n".join(lines)
    assert "-> AA (for control id LATE from" in text


async def test_printing_decodes_with_msh_18() -> None:
    lines: list[str] = []
    message = oru("L1", msh18="8859/1", obx="Müller")
    assert "Müller".encode("latin-1") in message
    async with LocalEhr(out=lines.append) as ehr, client(ehr) as c:
        await c.send(message)
    assert "OBX|1|ST|2345-7^Glucose^LN||Müller" in lines[0].split("\n")
    assert ehr.received[0].raw == message  # bytes kept as they came


async def test_undecodable_bytes_are_printed_with_replacement() -> None:
    lines: list[str] = []
    message = oru("U1").replace(b"glucose", b"gl\xffcose")
    async with LocalEhr(out=lines.append) as ehr, client(ehr) as c:
        ack = await c.send(message)
    assert segments(ack)["MSA"][1] == "AA"
    assert "gl\ufffdcose" in lines[0]


async def test_a_frame_without_msh_gets_ar_and_the_receiver_goes_on() -> None:
    lines: list[str] = []
    async with LocalEhr(out=lines.append) as ehr, client(ehr) as c:
        nak = await c.send(b"hello\rworld\r")
        ack = await c.send(oru("AFTER"))
    seg = segments(nak)
    assert seg["MSA"][1:3] == ["AR", ""]
    assert "no MSH segment" in seg["ERR"][3]
    assert segments(ack)["MSA"][1:3] == ["AA", "AFTER"]
    bad = ehr.received[0]
    assert (bad.control_id, bad.message_type, bad.ack_code) == ("", "", "AR")
    assert bad.raw == b"hello\rworld\r"
    assert lines[0].startswith("<- (not HL7: no MSH segment) from ")


async def test_a_frame_without_msh_leaves_the_one_shot_faults_alone(ehr: LocalEhr) -> None:
    async with client(ehr) as c:
        await c.send(oru("FIRST"))
        ehr.stale_ack_next()
        nak = await c.send(b"not hl7\r")
        stale = await c.send(oru("SECOND"))
        correct = await c.read_ack()
    assert segments(nak)["MSA"][1:3] == ["AR", ""]
    assert segments(stale)["MSA"][1:3] == ["AA", "FIRST"]  # the frame is not a message
    assert segments(correct)["MSA"][1:3] == ["AA", "SECOND"]


async def test_several_connections_at_once(ehr: LocalEhr) -> None:
    # A peer holding half a frame must not hold up anyone else.
    _, stuck = await asyncio.open_connection("127.0.0.1", ehr.port)
    stuck.write(VT + b"MSH|^~\\&|HALF")
    await stuck.drain()

    async def sender(n: int) -> list[str]:
        async with client(ehr) as c:
            return [segments(await c.send(oru(f"C{n}-{k}")))["MSA"][2] for k in range(3)]

    answered = await asyncio.gather(*(sender(n) for n in range(5)))
    stuck.close()
    assert answered == [[f"C{n}-{k}" for k in range(3)] for n in range(5)]
    assert len(ehr.received) == 15
    assert len({r.peer for r in ehr.received}) == 5


async def test_two_frames_in_one_write_get_two_acks_in_order(ehr: LocalEhr) -> None:
    async with client(ehr) as c:
        assert c._writer is not None
        c._writer.write(encode_frame(oru("B1")) + encode_frame(oru("B2")))
        first, second = await c.read_ack(), await c.read_ack()
    assert [segments(a)["MSA"][2] for a in (first, second)] == ["B1", "B2"]


async def test_stop_closes_connections_and_is_bounded() -> None:
    ehr = LocalEhr(ack="none")
    await ehr.start()
    async with client(ehr, timeout=TIMEOUT) as c:
        assert c._writer is not None
        c._writer.write(encode_frame(oru("PENDING")))
        await ehr.wait_for(1, timeout=TIMEOUT)
        began = time.monotonic()
        await ehr.stop()
        assert time.monotonic() - began < 10
        with pytest.raises(MllpConnectionLost):
            await c.read_ack()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", ehr.port)


async def test_a_taken_port_is_a_listen_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=f"127.0.0.1:{port}.*--port"):
            await LocalEhr(port=port).start()


def test_unknown_modes_are_refused() -> None:
    ehr = LocalEhr()
    with pytest.raises(ValueError, match="AA, AE, AR, none"):
        ehr.ack = "CA"
    with pytest.raises(ValueError, match="'XX'"):
        ehr.script(["AA", "XX"])
    with pytest.raises(ValueError, match="0 or more"):
        LocalEhr(delay_ms=-1)
