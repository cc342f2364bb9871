"""A message too big for Kafka: refused at intake, or failed alone; it never blocks others.

Issue 16.4: intake took frames up to 16 MiB while Kafka takes 1 MiB; an ORU with a 1.5 MB
OBX-5 got AA, then the publisher retried its record forever and every later message stayed
pending. Real parts: an MLLP socket, the SQLite spool file, and a topic on the real broker
created with a small ``max.message.bytes`` (so the test needs no megabytes).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from connectors.settings import KafkaSettings
from gateway.ack import ack_code_of
from gateway.config import GatewaySettings, HttpSettings, ListenerSettings, SpoolSettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.integration.conftest import bounded, read_records

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ORU = split_messages((ROOT / "samples" / "messages" / "oru_r01.hl7").read_bytes())[0]
TOPIC_LIMIT = 64 * 1024  # the topic's max.message.bytes


def oru(control_id: str, report_bytes: int = 0) -> bytes:
    """The sample ORU with MSH-10 = ``control_id``, plus a text OBX of ``report_bytes``."""
    first, rest = ORU.split(b"\r", 1)
    fields = first.split(b"|")
    fields[9] = control_id.encode()
    message = b"|".join(fields) + b"\r" + rest
    if report_bytes:
        text = (b"Findings within normal limits. " * (report_bytes // 31 + 1))[:report_bytes]
        message += b"OBX|99|TX|11526-1^Pathology study^LN||" + text + b"||||||F\r"
    return message


async def create_small_topic(bootstrap: str) -> str:
    topic = f"test-small-{uuid.uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(
            topic, num_partitions=1, replication_factor=1,
            topic_configs={"max.message.bytes": str(TOPIC_LIMIT)})])
    finally:
        await admin.close()
    assert all(error_code == 0 for _, error_code, *_ in response.topic_errors), response
    return topic


def statuses(spool: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(spool) as conn:
        rows = conn.execute("SELECT control_id, status, last_error FROM messages").fetchall()
    conn.close()
    return {control_id: (status, error) for control_id, status, error in rows}


@bounded(120)
async def test_a_record_too_large_for_its_topic_fails_alone_and_the_rest_go_out_in_order(
        tmp_path: Path, kafka_bootstrap: str) -> None:
    topic = await create_small_topic(kafka_bootstrap)
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="big", port=0)], http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"), mapping_workers=0,
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=topic))
    sent = ["SMALL1", "BIG", "SMALL2", "SMALL3"]
    async with GatewayService(settings, http=False) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=30) as client:
            for control_id in sent:
                size = 3 * TOPIC_LIMIT if control_id == "BIG" else 0
                ack = (await client.send(oru(control_id, size))).decode()
                assert ack_code_of(ack) == "CA", ack  # under the 1 MiB frame cap: accepted
        for _ in range(300):  # up to 60 s
            if not await gateway.spool.depth():
                break
            await asyncio.sleep(0.2)
        assert await gateway.spool.depth() == 0, statuses(tmp_path / "spool.db")
        refused = gateway.registry.get_sample_value(
            "hl7gw_publish_refused_total",
            {"topic": topic, "error_class": "MessageSizeTooLargeError"})
        assert refused == 1
    rows = statuses(tmp_path / "spool.db")
    status, error = rows["BIG"]
    assert status == "failed"
    assert error is not None and "MessageSizeTooLargeError" in error
    assert {c: s for c, (s, _) in rows.items() if c != "BIG"} == {
        "SMALL1": "published", "SMALL2": "published", "SMALL3": "published"}
    records = await read_records(kafka_bootstrap, topic, 3)
    with sqlite3.connect(tmp_path / "spool.db") as conn:
        control_of = dict(conn.execute("SELECT id, control_id FROM messages").fetchall())
    conn.close()
    order = [control_of[int(dict(r.headers)["ce_hl7spoolrow"])] for r in records]
    assert order == ["SMALL1", "SMALL2", "SMALL3"]


@bounded(60)
async def test_a_frame_larger_than_kafka_takes_is_refused_at_intake(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str) -> None:
    # The 1.5 MB ORU: past max_frame_bytes (1 MiB by default, as Kafka's
    # max_request_size) it is refused with CR (AR in original mode) and an ERR naming the
    # limit, so the sender does not resend it forever; its first bytes are kept in
    # `rejected`; the connection goes on and the next message is accepted.
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="cap", port=0)], http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"), mapping_workers=0,
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic))
    assert settings.listeners[0].max_frame_bytes == settings.kafka.max_request_size
    async with GatewayService(settings, http=False) as gateway:
        port = gateway.listeners[0].port
        async with MllpClient("127.0.0.1", port, timeout=30) as client:
            refusal = (await client.send(oru("HUGE", 1_500_000))).decode()
            after = (await client.send(oru("AFTER"))).decode()
    assert ack_code_of(refusal) == "CR"
    assert "MSA|CR|HUGE" in refusal  # echoed from the first bytes of the frame
    assert "max_frame_bytes" in refusal.split("\rERR|", 1)[1]
    assert ack_code_of(after) == "CA"
    assert set(statuses(tmp_path / "spool.db")) == {"AFTER"}
    with sqlite3.connect(tmp_path / "spool.db") as conn:
        kept = conn.execute("SELECT control_id, ack_code, length(raw) FROM rejected").fetchall()
    conn.close()
    assert kept == [("HUGE", "AR", 64 * 1024)]


def long_report(control_id: str, lines: int) -> bytes:
    """The sample ORU plus ``lines`` short text OBX: a few bytes each in HL7, an
    Observation each in FHIR, so the Bundle is many times the size of the message."""
    obx = b"".join(b"OBX|%d|TX|11526-1^Pathology study^LN||Line %d of the report||||||F\r"
                   % (100 + n, n) for n in range(lines))
    return oru(control_id) + obx


@bounded(120)
async def test_a_message_that_fits_intake_but_maps_too_large_fails_alone(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str) -> None:
    # The producer itself refuses the record (max_request_size), before the broker sees it.
    limit = 64 * 1024
    settings = GatewaySettings(
        listeners=[ListenerSettings(name="long", port=0, max_frame_bytes=limit)],
        http=HttpSettings(port=0), spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic,
                            max_request_size=limit))
    report = long_report("LONG", 600)
    assert len(report) < limit  # accepted at intake...
    async with GatewayService(settings, http=False) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=30) as client:
            for message in (oru("BEFORE"), report, oru("AFTER1"), oru("AFTER2")):
                assert ack_code_of((await client.send(message)).decode()) == "CA"
        for _ in range(300):
            if not await gateway.spool.depth():
                break
            await asyncio.sleep(0.2)
    rows = statuses(tmp_path / "spool.db")
    status, error = rows["LONG"]
    assert status == "failed"  # ...but its Bundle is larger than Kafka takes
    assert error is not None and "MessageSizeTooLargeError" in error
    assert {c: s for c, (s, _) in rows.items() if c != "LONG"} == {
        "BEFORE": "published", "AFTER1": "published", "AFTER2": "published"}
    records = await read_records(kafka_bootstrap, kafka_topic, 3)
    with sqlite3.connect(tmp_path / "spool.db") as conn:
        control_of = dict(conn.execute("SELECT id, control_id FROM messages").fetchall())
    conn.close()
    assert [control_of[int(dict(r.headers)["ce_hl7spoolrow"])] for r in records] == [
        "BEFORE", "AFTER1", "AFTER2"]
