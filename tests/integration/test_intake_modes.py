"""ACK modes, batches and separators over a real socket against a running gateway."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.ack import ack_code_of
from gateway.config import GatewaySettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.support import SAMPLES, with_msh

pytestmark = pytest.mark.integration

SAMPLE = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]


def msa(ack: bytes) -> list[str]:
    return next(s for s in ack.decode().split("\r") if s.startswith("MSA")).split("|")


async def test_ne_gets_no_answer_and_the_next_message_gets_its_own(
        gateway_settings: GatewaySettings) -> None:
    silent = with_msh(SAMPLE, f10="NE1", f15="NE", f16="NE")
    loud = with_msh(SAMPLE, f10="AL1", f15="AL", f16="NE")
    async with GatewayService(gateway_settings, http=False) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
            client._writer.write(b"\x0b" + silent + b"\x1c\r")  # type: ignore[union-attr]
            ack = await client.send(loud)
        assert msa(ack)[1:3] == ["CA", "AL1"]  # the first answer is the second message's
        counts = await gateway.spool.counts()
    assert sum(v for k, v in counts.items() if k in ("pending", "published")) == 2


async def test_batch_over_the_socket_is_split_and_acked_once(
        gateway_settings: GatewaySettings) -> None:
    m1 = with_msh(SAMPLE, f10="B1M1", f15="", f16="")
    m2 = with_msh(SAMPLE, f10="B1M2", f15="", f16="")
    frame = (b"BHS|^~\\&|EPICADT|GOODHEALTH|HL7GW|CLOUDFHIR|20240115||||BATCH7\r"
             + m1 + m2 + b"BTS|2\r")
    async with GatewayService(gateway_settings, http=False) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
            ack = await client.send(frame)
            short = await client.send(frame.replace(b"BTS|2", b"BTS|3"))
        counts = await gateway.spool.counts()
    assert msa(ack)[1:3] == ["AA", "BATCH7"]
    assert ack_code_of(short.decode()) == "AR"
    assert sum(v for k, v in counts.items() if k in ("pending", "published")) == 2


async def test_lf_separated_message_is_accepted_and_kept_as_received(
        gateway_settings: GatewaySettings) -> None:
    lf = with_msh(SAMPLE, f10="LF1").replace(b"\r", b"\n")
    async with GatewayService(gateway_settings, http=False) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
            ack = await client.send(lf)
        assert ack_code_of(ack.decode()) == "CA"
        await gateway.spool.flush()  # the journaled row into SQLite, for this connection
        conn = sqlite3.connect(gateway_settings.spool.path)
        raw = conn.execute("SELECT raw FROM messages WHERE control_id = 'LF1'").fetchone()[0]
        conn.close()
    assert raw == lf
