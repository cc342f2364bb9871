"""What a hostile envelope gets back: one well-formed ACK, nothing kept lost (issue 16).

A real gateway (MLLP listener, intake, SQLite spool, mapping, Kafka) and a raw socket
peer. Each frame must get exactly one ACK that frames as one MLLP block, uses the standard
``|^~\\&`` delimiters when the sender's are unusable, never carries 0x0B/0x1C or another
control character from the message, and every refusal is kept in ``rejected``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest

from gateway.config import GatewaySettings
from gateway.mllp.client import split_messages
from gateway.mllp.framing import encode_frame
from gateway.service import GatewayService
from mappers.timestamps import FHIR_PATTERNS
from mappers.validation import validate_bundle
from tests.integration.conftest import bounded, read_records
from tests.integration.mllp_helpers import peer, read_frames
from tests.support import sample_path, with_msh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SAMPLE = with_msh(split_messages(sample_path("adt_a01").read_bytes())[0], f15="", f16="")
CODES = {"AA", "AE", "AR", "CA", "CE", "CR"}


def with_separator(message: bytes, sep: bytes) -> bytes:
    """``message`` with MSH's field separator (MSH-1 and every split) replaced by ``sep``."""
    first, rest = message.split(b"\r", 1)
    return first.replace(b"|", sep) + b"\r" + rest


def well_formed(ack: bytes) -> dict[str, list[str]]:
    """The ACK's segments by id, after checking it is a standard-delimited HL7 ACK."""
    assert b"\x0b" not in ack and b"\x1c" not in ack, ack
    text = ack.decode("utf-8")
    segments = [s for s in text.split("\r") if s]
    assert text.endswith("\r")
    assert segments[0].startswith("MSH|^~\\&|"), segments[0]
    for seg in segments:
        assert re.fullmatch(r"[A-Z][A-Z0-9]{2}", seg[:3]), seg
        assert seg[3:4] in ("|", ""), seg
        assert not re.search(r"[\x00-\x1f\x7f]", seg), seg
    by_id = {s[:3]: s.split("|") for s in segments}
    assert by_id["MSA"][1] in CODES
    return by_id


async def exchange(port: int, payload: bytes) -> bytes:
    """Send ``payload`` (already framed) and return the one ACK frame; no second one."""
    async with peer(port) as (reader, writer):
        writer.write(payload)
        await writer.drain()
        [ack] = await read_frames(reader, 1)
        with pytest.raises(TimeoutError):  # exactly one answer
            await asyncio.wait_for(reader.read(1), 0.3)
        return ack


async def rejected_ids(gateway: GatewayService) -> list[str]:
    from gateway.spool import MessageFilter

    return [r.control_id for r in await gateway.spool.find_rejected(MessageFilter())]


@pytest.mark.parametrize("sep", [b"\xfc", b"\r", b"\n", b"A", b" "])
@bounded(60)
async def test_an_unusable_field_separator_gets_a_standard_nak(
        gateway_settings: GatewaySettings, sep: bytes) -> None:
    message = with_separator(with_msh(SAMPLE, f10="SEP-1"), sep)
    async with GatewayService(gateway_settings, http=False) as gateway:
        port = gateway.listeners[0].port
        ack = await exchange(port, encode_frame(message))
        segs = well_formed(ack)
        # AR 100 (not HL7), or AE 102 for 0xFC: not UTF-8, the listener's charset
        assert (segs["MSA"][1], segs["ERR"][3].split("^")[0]) in {("AR", "100"),
                                                                  ("AE", "102")}
        assert len(await rejected_ids(gateway)) == 1
        good = well_formed(await exchange(port, encode_frame(with_msh(SAMPLE, f10="OK-1"))))
        assert good["MSA"][1:3] == ["AA", "OK-1"]


@bounded(60)
async def test_unusable_encoding_characters_get_standard_delimiters(
        gateway_settings: GatewaySettings) -> None:
    first, rest = with_msh(SAMPLE, f10="ENC-1").split(b"\r", 1)
    broken = first.replace(b"|^~\\&|", b"|^~\\\x0b|", 1) + b"\r" + rest
    async with GatewayService(gateway_settings, http=False) as gateway:
        segs = well_formed(await exchange(gateway.listeners[0].port, encode_frame(broken)))
        assert segs["MSA"][1:3] == ["AR", "ENC-1"]  # the fields were still read, and echoed
        assert await rejected_ids(gateway) == ["ENC-1"]


@bounded(60)
async def test_fs_and_vt_from_the_message_never_reach_the_ack(
        gateway_settings: GatewaySettings) -> None:
    # The campaign's frame: MSH-12 ends in FS, then the frame's own FS CR.
    fs_frame = (b"\x0bMSH|^~\\&|A|F|R|R|20240601120500||ADT^A08|X-1|P|2.3\x1c"
                b"\x1c\r")
    vt_ids = with_msh(SAMPLE, f3="APP\x0bX", f10="VT\x0b1\x1cZ", f12="2.5.1\x07")
    async with GatewayService(gateway_settings, http=False) as gateway:
        port = gateway.listeners[0].port
        segs = well_formed(await exchange(port, fs_frame))
        assert segs["MSA"][2] == "X-1"
        assert segs["MSH"][11] == "2.3"  # MSH-12.1 is read stripped (FS is whitespace)
        segs = well_formed(await exchange(port, encode_frame(vt_ids)))
        assert segs["MSA"][2] == "VT\\X0B\\1\\X1C\\Z"
        assert segs["MSH"][11] == "2.5.1\\X07\\"
        assert segs["MSH"][4] == "APP\\X0B\\X"  # MSH-5: our receiver is its sender
        assert len(await rejected_ids(gateway)) == 2


@bounded(60)
async def test_superscript_two_in_msh12_is_refused_with_one_ack(
        gateway_settings: GatewaySettings) -> None:
    # byte 0xB2 in Latin-1, as the campaign sent it (MSH-18 says so)
    message = with_msh(SAMPLE, f10="SUP-1", f12="2.²", f18="8859/1").decode().encode(
        "latin-1")
    async with GatewayService(gateway_settings, http=False) as gateway:
        port = gateway.listeners[0].port
        segs = well_formed(await exchange(port, encode_frame(message)))
        assert segs["MSA"][1:3] == ["AR", "SUP-1"]
        assert await rejected_ids(gateway) == ["SUP-1"]
        good = well_formed(await exchange(port, encode_frame(with_msh(SAMPLE, f10="OK-2"))))
        assert good["MSA"][1] == "AA"


@bounded(60)
async def test_superscript_two_as_a_batch_count_gets_one_ack(
        gateway_settings: GatewaySettings) -> None:
    batch = (b"BHS|^~\\&|EPICADT|GOODHEALTH|HL7GW|CLOUDFHIR|20240115||||BATCH-SUP\r"
             ) + with_msh(SAMPLE, f10="BS-1") + "BTS|²\r".encode()
    huge = batch.replace("BTS|²".encode(), b"BTS|" + b"9" * 5000).replace(
        b"BATCH-SUP", b"BATCH-HUGE").replace(b"BS-1", b"BS-2")
    async with GatewayService(gateway_settings, http=False) as gateway:
        port = gateway.listeners[0].port
        # "²" is no count: the batch is read as one without BTS-1, and answered
        segs = well_formed(await exchange(port, encode_frame(batch)))
        assert segs["MSA"][1:3] == ["AA", "BATCH-SUP"]
        # 5000 digits: int() would refuse it (its digit limit); a count that cannot match
        segs = well_formed(await exchange(port, encode_frame(huge)))
        assert segs["MSA"][1:3] == ["AR", "BATCH-HUGE"]
        assert await rejected_ids(gateway) == ["BATCH-HUGE"]


@bounded(90)
async def test_a_superscript_fraction_in_msh7_never_reaches_kafka_as_invalid_fhir(
        gateway_settings: GatewaySettings, kafka_bootstrap: str, kafka_topic: str) -> None:
    message = with_msh(SAMPLE, f7="20240601120000.²+0000", f10="TS-1").decode().encode()
    async with GatewayService(gateway_settings, http=False) as gateway:
        segs = well_formed(await exchange(gateway.listeners[0].port, encode_frame(message)))
        assert segs["MSA"][1] == "AA"  # the message is fine; only MSH-7 is unusable
        [record] = await asyncio.wait_for(read_records(kafka_bootstrap, kafka_topic, 1), 60)
    bundle: dict[str, Any] = orjson.loads(record.value)
    validate_bundle(bundle)  # raises InvalidOutput on the old code ("...00.²+00:00")
    assert "timestamp" not in bundle or FHIR_PATTERNS["instant"].fullmatch(bundle["timestamp"])
