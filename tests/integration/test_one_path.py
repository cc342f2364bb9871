"""The same bytes give the same Bundle through every way into the mapper (issue 11.1).

One running gateway (MLLP listener, SQLite spool, mapping worker process, Kafka, uvicorn
console API) with a sender profile. Each variant of one message — Latin-1 declared by
MSH-18 ``8859/1``, UTF-8 with a BOM, UTF-16 with a BOM, UTF-16 BE declared by MSH-18
without one, and Latin-1 that only the sender's profile (charset and zone) reads right —
goes through MLLP intake and the worker onto Kafka, through ``map_one`` on the stored
row, through ``hl7gw map`` as a subprocess, through ``POST /api/v1/playground`` and
through a replay; every Bundle must be the same, with the Patient named ``Gagné``.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.ack import ack_code_of
from gateway.config import ConsoleSettings, ConsoleUser, GatewaySettings, ProfilesSettings
from gateway.mapping import map_one
from gateway.mllp.client import MllpClient
from gateway.service import GatewayService
from gateway.spool import MessageFilter
from mappers.hl7v2.envelope import sniff
from tests.integration.conftest import bounded
from tests.support import REPO
from tests.support.messages import (
    PROFILE_YAML,
    encounter_start,
    gagne_variants,
    patient_family,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

VIEWER, OPERATOR = "viewer-token-one-path-01", "operator-token-one-path-01"
HL7GW = str(Path(sys.executable).with_name("hl7gw"))


def console(tmp_path: Path) -> ConsoleSettings:
    def user(name: str, role: str, token: str) -> ConsoleUser:
        return ConsoleUser(name=name, role=role,
                           token_sha256=hashlib.sha256(token.encode()).hexdigest())
    return ConsoleSettings(enabled=True, audit_path=tmp_path / "audit.jsonl",
                           users=[user("vic", "viewer", VIEWER),
                                  user("olga", "operator", OPERATOR)])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ack_text(ack: bytes, raw: bytes) -> str:
    """An ACK's text: in the message's own UTF-16 layout, else UTF-8."""
    layout = sniff(raw).layout
    return ack.decode(layout if layout.startswith("utf-16") else "utf-8")


class Records:
    """Kafka records of the test's topic, read by one consumer, by spool row."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from aiokafka import AIOKafkaConsumer

        self.consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                         auto_offset_reset="earliest",
                                         enable_auto_commit=False)
        self.seen: list[Any] = []

    async def until(self, count: int, within: float = 90) -> list[Any]:
        async with asyncio.timeout(within):
            while len(self.seen) < count:
                for batch in (await self.consumer.getmany(timeout_ms=200)).values():
                    self.seen.extend(batch)
        return self.seen


def header(record: Any, name: str) -> str:
    return str(next(v.decode() for k, v in record.headers if k == name))


async def hl7gw_map(path: Path, profiles: Path) -> dict[str, Any]:
    """``hl7gw map FILE --profiles DIR`` in a subprocess: the Bundle it prints."""
    proc = await asyncio.create_subprocess_exec(
        HL7GW, "map", str(path), "--profiles", str(profiles),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    bundle: dict[str, Any] = orjson.loads(out)
    return bundle


@bounded(280)
async def test_the_same_bytes_give_the_same_bundle_everywhere(
        gateway_settings: GatewaySettings, tmp_path: Path, kafka_bootstrap: str,
        kafka_topic: str) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "gagne.yaml").write_text(PROFILE_YAML)
    settings = gateway_settings.model_copy(update={
        "console": console(tmp_path), "mapping_workers": 1,
        "profiles": ProfilesSettings(dir=profiles, watch_interval_s=0)})
    variants = gagne_variants()
    records = Records(kafka_bootstrap, kafka_topic)
    await records.consumer.start()
    try:
        async with GatewayService(settings) as gateway:
            # 1. MLLP intake, then the worker maps the stored row onto Kafka
            async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=20) as mllp:
                for name, raw in variants.items():
                    ack = ack_text(await mllp.send(raw), raw)
                    assert ack_code_of(ack) == "AA", (name, ack)
            published = {}
            for record in await records.until(len(variants)):
                row = int(header(record, "ce_hl7spoolrow"))
                published[row] = orjson.loads(record.value)
            infos = {i.control_id: i for i in await gateway.spool.find(MessageFilter())}
            by_name = {}
            for name, raw in variants.items():
                control_id = sniff(raw).envelope.control_id
                by_name[name] = infos[control_id]
                assert patient_family(published[infos[control_id].id]) == "Gagné", name
            assert encounter_start(published[by_name["profile"].id]).endswith("-05:00")
            assert encounter_start(published[by_name["latin1-msh18"].id]).endswith("+00:00")

            base = f"http://127.0.0.1:{gateway.http_port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                for name, raw in variants.items():
                    info = by_name[name]
                    expected = published[info.id]
                    # 2. the worker's own function on the stored row
                    stored = await gateway.spool.body(info.id)
                    assert stored is not None and stored.raw == raw
                    mapped = map_one(stored.raw, info.charset, info.timezone,
                                     gateway.profiles.current)
                    assert mapped.error is None, (name, mapped.error)
                    assert mapped.payload is not None
                    assert orjson.loads(mapped.payload) == expected, name
                    # 3. hl7gw map, a separate process reading the same bytes from a file
                    path = tmp_path / f"{name}.hl7"
                    path.write_bytes(raw)
                    assert await hl7gw_map(path, profiles) == expected, name
                    # 4. the console playground, given the text as a person would paste it
                    text = raw.decode(info.charset)
                    answer = await client.post("/api/v1/playground", headers=bearer(VIEWER),
                                               json={"text": text, "profile": "auto"})
                    assert answer.status_code == 200, answer.text
                    view = answer.json()
                    assert view["error"] is None, (name, view["error"])
                    assert view["bundle"] == expected, name

                # 5. replay: every row mapped and published again by the worker
                ids = sorted(i.id for i in by_name.values())
                replay = await client.post("/api/v1/replay", json={"ids": ids},
                                           headers=bearer(OPERATOR))
                assert replay.status_code == 202, replay.text
            again = (await records.until(2 * len(variants)))[len(variants):]
            assert len(again) == len(variants)
            for record in again:
                assert header(record, "ce_id").endswith("-r1")
                row = int(header(record, "ce_hl7spoolrow"))
                assert orjson.loads(record.value) == published[row], row
    finally:
        await records.consumer.stop()


async def test_profiles_check_reads_every_variant_as_the_gateway_does(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "gagne.yaml").write_text(PROFILE_YAML)
    args = []
    for name, raw in gagne_variants().items():
        path = tmp_path / f"{name}.hl7"
        path.write_bytes(raw)
        args += ["--message", str(path)]
    proc = await asyncio.create_subprocess_exec(
        HL7GW, "profiles", "check", str(profiles), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=REPO)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode() + err.decode()
    lines = [ln for ln in out.decode().splitlines() if ".hl7#1:" in ln]
    assert len(lines) == len(gagne_variants())
    assert all("ADT^A01 -> " in ln for ln in lines), lines
    assert sum("profile gagne:" in ln for ln in lines) == 1
