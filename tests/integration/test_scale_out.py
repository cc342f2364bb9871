"""Scale-out mode over the real broker: the gateway publishes raw, mapper instances map.

The promise (docs/scale-out.md): a consumer of the FHIR topic cannot tell the modes apart.
Same messages in, the same events out: ids, keys, types, headers and Bundle bytes, and the
same order per patient, whether one gateway mapped them or two ``hl7gw mapper`` instances
of one consumer group did.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from aiokafka.structs import ConsumerRecord

from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.settings import KafkaSettings
from gateway.ack import ack_code_of
from gateway.config import GatewaySettings, HttpSettings, ListenerSettings, ScaleOutSettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.scaleout import MapperService
from gateway.service import GatewayService
from tests.conftest import CreateTopic
from tests.integration.conftest import bounded, free_port, read_records
from tests.support import REPO, SAMPLES, sample_path, with_control_id

HL7GW = str(Path(sys.executable).with_name("hl7gw"))
PATIENTS = 6
ROUNDS = 4  # messages per patient, in an order that matters (admit, update, result...)


def _with_mrn(message: bytes, mrn: str) -> bytes:
    """``message`` with PID-3's first identifier replaced: another patient."""
    segments = message.split(b"\r")
    for n, seg in enumerate(segments):
        if seg.startswith(b"PID|"):
            fields = seg.split(b"|")
            first, _, rest = fields[3].partition(b"~")
            comps = first.split(b"^")
            comps[0] = mrn.encode()
            fields[3] = b"^".join(comps) + (b"~" + rest if rest else b"")
            segments[n] = b"|".join(fields)
    return b"\r".join(segments)


def _messages() -> list[bytes]:
    kinds = [split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0],
             split_messages((SAMPLES / "adt_a08.hl7").read_bytes())[0],
             split_messages(sample_path("oru_r01").read_bytes())[0],
             split_messages((SAMPLES / "adt_a08.hl7").read_bytes())[0]]
    out = []
    for round_ in range(ROUNDS):
        for p in range(PATIENTS):
            message = _with_mrn(kinds[round_ % len(kinds)], f"SO{p:04d}")
            out.append(with_control_id(message, f"SO-{p}-{round_}"))
    return out


def _settings(tmp: Path, bootstrap: str, topic: str, scale_out: ScaleOutSettings | None
              ) -> GatewaySettings:
    return GatewaySettings(
        source="urn:hl7gw:test",
        listeners=[ListenerSettings(name="t", port=0)],
        http=HttpSettings(port=0),
        spool={"path": tmp / "spool.db"},
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic=topic),
        scale_out=scale_out,
        mapping_workers=0,
    )


async def _send_all(settings: GatewaySettings, messages: list[bytes]) -> GatewayService:
    gateway = GatewayService(settings, http=False)
    await gateway.start()
    async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=20) as client:
        for message in messages:
            ack = (await client.send(message)).decode()
            assert ack_code_of(ack) in ("AA", "CA"), ack
    return gateway


def _comparable(record: ConsumerRecord[bytes, bytes]) -> tuple[Any, ...]:
    """Everything a consumer sees but the time the message was received (a new run)."""
    headers = tuple(sorted((k, v) for k, v in record.headers if k != "ce_time"))
    return record.key, record.value, headers


def _order_per_key(records: list[ConsumerRecord[bytes, bytes]]) -> dict[bytes | None, list[str]]:
    order: dict[bytes | None, list[str]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        headers = dict(record.headers)
        order[record.key].append(headers["ce_id"].decode())
    return dict(order)


@contextlib.asynccontextmanager
async def _mappers(count: int, scale_out: ScaleOutSettings, kafka: KafkaSettings
                   ) -> AsyncIterator[list[MapperService]]:
    services = [MapperService(scale_out, kafka) for _ in range(count)]
    tasks = [asyncio.create_task(s.run()) for s in services]
    try:
        yield services
    finally:
        for service in services:
            service.request_stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


@bounded(240)
async def test_two_mappers_publish_what_the_gateway_alone_publishes(
        tmp_path: Path, kafka_bootstrap: str, create_topic: CreateTopic) -> None:
    messages = _messages()
    n = len(messages)

    # One process: the gateway maps and publishes.
    single_topic = await create_topic(partitions=3)
    settings = _settings(tmp_path / "single", kafka_bootstrap, single_topic, None)
    (tmp_path / "single").mkdir()
    gateway = await _send_all(settings, messages)
    try:
        single = await read_records(kafka_bootstrap, single_topic, n)
    finally:
        await gateway.stop()

    # Scale-out: the gateway publishes raw; two mappers in one group map and publish.
    raw_topic = await create_topic(partitions=4)
    fhir_topic = await create_topic(partitions=3)
    scale_out = ScaleOutSettings(raw_topic=raw_topic, group_id=f"g-{raw_topic}",
                                 max_batch=5, mapping_workers=0)
    (tmp_path / "scaled").mkdir()
    settings = _settings(tmp_path / "scaled", kafka_bootstrap, fhir_topic, scale_out)
    async with _mappers(2, scale_out, settings.kafka) as services:
        for _ in range(600):  # up to 120 s for the group to settle on a loaded machine
            if all(len(s.assigned) == 2 for s in services):
                break
            await asyncio.sleep(0.2)
        assert [len(s.assigned) for s in services] == [2, 2]
        gateway = await _send_all(settings, messages)
        try:
            scaled = await read_records(kafka_bootstrap, fhir_topic, n)
            raw = await read_records(kafka_bootstrap, raw_topic, n)
        finally:
            await gateway.stop()
        consumed = [s.metrics.registry.get_sample_value("hl7gw_mapper_consumed_total") or 0
                    for s in services]

    assert len(single) == len(scaled) == n
    assert sorted(map(_comparable, single)) == sorted(map(_comparable, scaled))
    assert _order_per_key(single) == _order_per_key(scaled)
    # Each patient's messages share one partition of the raw topic, under the FHIR key.
    raw_partitions: dict[bytes | None, set[int]] = defaultdict(set)
    for record in raw:
        raw_partitions[record.key].add(record.partition)
    assert set(raw_partitions) == set(_order_per_key(single))
    assert all(len(parts) == 1 for parts in raw_partitions.values())
    assert sum(consumed) == n
    assert all(c > 0 for c in consumed), consumed  # the work was shared


@bounded(120)
async def test_an_unmappable_raw_message_is_dead_lettered_with_its_reason(
        kafka_bootstrap: str, create_topic: CreateTopic) -> None:
    raw_topic = await create_topic(partitions=1)
    fhir_topic = await create_topic(partitions=1)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=fhir_topic)
    scale_out = ScaleOutSettings(raw_topic=raw_topic, group_id=f"g-{raw_topic}",
                                 mapping_workers=0)
    good = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
    bad = good.replace(b"ADT^A01", b"ADT^A99", 1)  # no spec for A99: the mapper refuses it
    async with EventProducer(kafka) as producer:
        for n, body in enumerate([bad, good]):
            await producer.send(raw_topic, Event(
                id=f"ev{n}-v2", source="urn:test", type="hl7gw.v2.adt", subject=None,
                time=None, key=b"k", data=body, content_type="application/hl7-v2; charset=utf-8",
                extensions={"hl7messagetype": "ADT_A01", "hl7eventid": f"ev{n}",
                            "hl7timezone": "Europe/Berlin", "hl7spoolrow": str(n)}))
        await producer.send_record(raw_topic, key=b"k", value=b"not an event", headers=[])
    async with _mappers(1, scale_out, kafka) as (service,):
        dead = await read_records(kafka_bootstrap, scale_out.dead_letter_topic, 2)
        published = await read_records(kafka_bootstrap, fhir_topic, 1)
    reasons = [dict(r.headers) for r in dead]
    assert [h["dlq_error_class"] for h in reasons] == [b"unmappable", b"unreadable"]
    assert b"UnsupportedEvent" in reasons[0]["dlq_error_message"]
    assert dead[0].value == bad  # kept as it came
    assert dict(published[0].headers)["ce_id"] == b"ev1"
    assert orjson.loads(published[0].value)["resourceType"] == "Bundle"
    assert service.metrics.registry.get_sample_value(
        "hl7gw_mapper_dead_letters_total", {"reason": "unmappable"}) == 1


def test_hl7gw_mapper_serves_health_and_stops_on_sigterm(
        tmp_path: Path, kafka_bootstrap: str) -> None:
    """The command: ready once it holds partitions, /metrics served, SIGTERM ends it."""
    http_port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": kafka_bootstrap, "topic": f"t-{http_port}"},
        "scale_out": {"raw_topic": f"raw-{http_port}", "group_id": f"g-{http_port}",
                      "mapping_workers": 1, "http": {"port": http_port}},
        "drain_timeout_s": 8,
    }))
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    # stderr to a file: a pipe nobody reads could fill and block the process
    log = tmp_path / "mapper.log"
    with log.open("w") as err_file:
        proc = subprocess.Popen([HL7GW, "mapper", "--config", str(config)], cwd=REPO, env=env,
                                stderr=err_file)
    try:
        url = f"http://127.0.0.1:{http_port}"
        ready = None
        for _ in range(240):  # up to 120 s on a loaded machine
            with contextlib.suppress(httpx.HTTPError):
                ready = httpx.get(f"{url}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
        assert ready is not None and ready.status_code == 200, ready and ready.text
        assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert "hl7gw_mapper_assigned_partitions" in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_scale_out_settings_refuse_a_raw_topic_that_is_a_fhir_topic() -> None:
    with pytest.raises(ValueError, match="must differ from the FHIR topics"):
        GatewaySettings(kafka=KafkaSettings(bootstrap_servers="x:1", topic="same"),
                        scale_out=ScaleOutSettings(raw_topic="same"))
    with pytest.raises(ValueError, match=r"kafka\.raw_topic and scale_out"):
        GatewaySettings(kafka=KafkaSettings(bootstrap_servers="x:1", raw_topic="r"),
                        scale_out=ScaleOutSettings(raw_topic="other"))
