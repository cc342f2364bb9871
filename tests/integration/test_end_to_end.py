"""The whole path with real parts: MLLP socket → spool → Kafka → bridge → uvicorn function."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from connectors.bridge import Bridge
from gateway.ack import ack_code_of
from gateway.config import GatewaySettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.integration.conftest import RunningServer
from tests.support import SAMPLES, with_control_id

pytestmark = pytest.mark.integration

A01 = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]


def msh(message: bytes, n: int) -> str:
    """MSH-n of a message (MSH-1 is the separator, so index n - 1)."""
    return message.split(b"\r")[0].decode().split("|")[n - 1]


async def read_topic(bootstrap: str, topic: str, *, expect: int,
                     settle: float = 1.5) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic``: waits for ``expect`` of them, then ``settle`` s for extras."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(records) < expect and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        settle_until = loop.time() + settle
        while loop.time() < settle_until:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def function_events(url: str, *, expect: int, wait_s: float = 30) -> list[Any]:
    async with httpx.AsyncClient() as client:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            events: list[Any] = (await client.get(f"{url}/events")).json()
            if len(events) >= expect or loop.time() > deadline:
                return events
            await asyncio.sleep(0.1)


async def test_adt_a01_travels_from_mllp_to_the_function(
        gateway_settings: GatewaySettings, function_server: RunningServer,
        kafka_bootstrap: str, kafka_topic: str) -> None:
    assert gateway_settings.bridge is not None
    bridge = Bridge(gateway_settings.bridge, gateway_settings.kafka)
    bridge_task = asyncio.create_task(bridge.run())
    try:
        async with GatewayService(gateway_settings) as gateway:
            port = gateway.listeners[0].port
            async with MllpClient("127.0.0.1", port, timeout=10) as client:
                ack = await client.send(A01)
                again = await client.send(A01)  # the same frame, re-sent

            # ACK: AA, MSA-2 echoes MSH-10; the resend gets the very same ACK back.
            text = ack.decode()
            assert ack_code_of(text) == "CA"  # the sample asks for enhanced mode (MSH-15 AL)
            msa = next(s for s in text.split("\r") if s.startswith("MSA")).split("|")
            assert msa[2] == msh(A01, 10)
            assert again == ack

            # Kafka: exactly one record, keyed by patient, CloudEvents binary headers.
            records = await read_topic(kafka_bootstrap, kafka_topic, expect=1)
            assert len(records) == 1
            record = records[0]
            headers = {k: v.decode() for k, v in record.headers}
            bundle = orjson.loads(record.value)
            patient = next(e["resource"] for e in bundle["entry"]
                           if e["resource"]["resourceType"] == "Patient")
            assert record.key == patient["id"].encode()
            assert headers["ce_specversion"] == "1.0"
            assert headers["ce_source"] == "urn:hl7gw:test"
            assert headers["ce_type"] == "hl7gw.fhir.adt.a01"
            assert headers["ce_subject"] == f"Patient/{patient['id']}"
            assert headers["ce_id"]
            assert headers["ce_time"].endswith("Z")
            assert headers["content-type"] == "application/fhir+json"
            # No PHI in the key or headers: not the MRN, the SSN, or any name.
            exposed = (record.key or b"").decode() + "".join(headers.values())
            for phi in ("4820017", "900112233", "Everyman", "Adam", "Smith"):
                assert phi not in exposed

            # Function: the Bundle arrived, once, with the same event id.
            events = await function_events(function_server.url, expect=1)
            assert [e["id"] for e in events] == [headers["ce_id"]]
            assert events[0]["bundle"] == bundle

            # Spool: one published row with its Kafka coordinates.
            conn = sqlite3.connect(gateway_settings.spool.path)
            rows = conn.execute("SELECT status, kafka_topic, kafka_offset FROM messages").fetchall()
            conn.close()
            assert rows == [("published", kafka_topic, record.offset)]
    finally:
        await bridge.stop()
        await asyncio.wait_for(bridge_task, 30)


async def test_bad_messages_get_naks_and_are_kept(gateway_settings: GatewaySettings) -> None:
    unsupported = A01.replace(b"ADT^A01", b"ADT^A99", 1)
    cases = [
        (b"this is not HL7", "AR", "100"),
        (b"", "AR", "100"),
        (unsupported, "CR", "201"),  # enhanced mode: commit reject
        (A01.replace(b"|2.5.1|", b"|9.9|", 1), "CR", "203"),
    ]
    async with GatewayService(gateway_settings, http=False) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
            for message, code, err in cases:
                ack = (await client.send(message)).decode()
                assert ack_code_of(ack) == code, message
                err_seg = next(s for s in ack.split("\r") if s.startswith("ERR")).split("|")
                assert err_seg[3].split("^")[0] == err
            # the listener still serves good messages after all that
            assert ack_code_of((await client.send(A01)).decode()) == "CA"
        counts = await gateway.spool.counts()
    assert counts["rejected"] == len(cases)
    conn = sqlite3.connect(gateway_settings.spool.path)
    raws = [r[0] for r in conn.execute("SELECT raw FROM rejected ORDER BY id")]
    conn.close()
    assert raws == [m for m, _, _ in cases]


async def test_store_and_forward_when_kafka_is_down(
        gateway_settings: GatewaySettings, kafka_bootstrap: str, kafka_topic: str) -> None:
    # Point the gateway at a port where no broker listens: intake must still ACK.
    from tests.integration.conftest import free_port

    down = gateway_settings.model_copy(update={"kafka": gateway_settings.kafka.model_copy(
        update={"bootstrap_servers": f"127.0.0.1:{free_port()}", "request_timeout_ms": 2000})})
    messages = [with_control_id(A01, f"SF{i}") for i in range(3)]
    async with GatewayService(down, http=False) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
            for message in messages:
                assert ack_code_of((await client.send(message)).decode()) == "CA"
        assert await gateway.spool.depth() == 3
    # Restart against the real broker: the spooled rows go out, in order.
    async with GatewayService(gateway_settings, http=False) as gateway:
        records = await read_topic(kafka_bootstrap, kafka_topic, expect=3, settle=0.5)
        assert await gateway.spool.depth() == 0
    ids = [dict(r.headers)["ce_id"] for r in sorted(records, key=lambda r: r.offset)]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert len({r.partition for r in records}) == 1  # same patient → same partition
