"""Sender profiles in a running gateway: real MLLP sockets, SQLite spool, mapping worker
process, uvicorn /readyz and the Kafka broker.

Two senders (MSH-3 ALPHA and BRAVO) send the same ADT^A01; only ALPHA has a profile. Its
changes show in ALPHA's FHIR on Kafka and never in BRAVO's. Edits are picked up by the
folder watcher and by SIGHUP without dropping the MLLP connection, and a broken edit is
rejected with file:line while the last good profile keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from gateway.ack import ack_code_of
from gateway.config import GatewaySettings, ProfilesSettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from gateway.spool import MessageFilter
from mappers.errors import ProfileError
from tests.integration.conftest import bounded
from tests.support import SAMPLES

pytestmark = pytest.mark.integration

SAMPLE = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
# PV1-44 without an offset, so the time zone in force shows in Encounter.period.start,
# and a Z-segment only ALPHA's profile maps.
BASE = (SAMPLE.replace(b"|20240115102500-0500\r", b"|20240115102500\r")
        + b"ZPD|1|PLATINUM\r")
TIER = "https://alpha.example/fhir/ext/tier"

PROFILE_V1 = f"""\
profile: alpha
description: ALPHA's quirks
match: {{application: ALPHA}}
timezone: Europe/Vienna
identifier_systems: {{EPIX: "https://alpha.example/sid/epix"}}
fields:
  - {{field: ZPD-2, resource: Patient, type: ST, extension: "{TIER}"}}
"""
PROFILE_V2 = PROFILE_V1.replace("Europe/Vienna", "Asia/Tokyo").replace(
    "sid/epix", "sid/epix-v2")
# Line 5 has a misspelt key: rejected as a whole, with the file and line.
BROKEN = PROFILE_V2.replace("identifier_systems:", "identifier_sistems:")


def message(sender: str, control_id: str) -> bytes:
    first, rest = BASE.split(b"\r", 1)
    fields = first.split(b"|")
    fields[2] = sender.encode()
    fields[9] = control_id.encode()
    return b"|".join(fields) + b"\r" + rest


async def send(client: MllpClient, sender: str, control_id: str) -> str:
    """Send one message and return its ACK code."""
    return ack_code_of((await client.send(message(sender, control_id))).decode()) or "??"


def write(path: Path, text: str) -> None:
    """Write and move the mtime on, so the watcher sees even an equal-size rewrite."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


class Topic:
    """One consumer for the whole test; ``until(n)`` waits for the n-th record overall."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.records: list[Any] = []

    async def until(self, count: int, within: float = 30) -> list[Any]:
        async with asyncio.timeout(within):
            while len(self.records) < count:
                for batch in (await self.consumer.getmany(timeout_ms=200)).values():
                    self.records.extend(batch)
        return self.records


@pytest.fixture
async def topic(kafka_bootstrap: str, kafka_topic: str) -> AsyncIterator[Topic]:
    consumer = AIOKafkaConsumer(kafka_topic, bootstrap_servers=kafka_bootstrap,
                                group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        yield Topic(consumer)
    finally:
        await consumer.stop()


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    d = tmp_path / "profiles"
    d.mkdir()
    write(d / "alpha.yaml", PROFILE_V1)
    return d


def with_profiles(settings: GatewaySettings, directory: Path, interval: float
                  ) -> GatewaySettings:
    return settings.model_copy(update={
        "profiles": ProfilesSettings(dir=directory, watch_interval_s=interval),
        "mapping_workers": 1})  # a real worker process: the snapshot crosses to it


async def by_control_id(gateway: GatewayService, records: list[Any]
                        ) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """control id -> (Patient and Encounter of the Bundle, record headers)."""
    out = {}
    for record in records:
        headers = {k: v.decode() for k, v in record.headers}
        row = int(headers["ce_hl7spoolrow"])
        [info] = await gateway.spool.find(MessageFilter(ids=(row,)))
        bundle = orjson.loads(record.value)
        kinds = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
        out[info.control_id] = (kinds, headers)
    return out


def epix_system(kinds: dict[str, Any]) -> str:
    return next(i["system"] for i in kinds["Patient"]["identifier"] if i["value"] == "E77123")


def tier(kinds: dict[str, Any]) -> list[str]:
    return [e["valueString"] for e in kinds["Patient"].get("extension", []) if e["url"] == TIER]


def metric(gateway: GatewayService, name: str, **labels: str) -> float:
    return gateway.registry.get_sample_value(name, labels) or 0.0


async def wait_for(predicate: Any, within: float = 15) -> None:
    """Poll ``predicate`` until it holds; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


@bounded(150)
async def test_a_profile_changes_its_sender_only_and_reloads_while_connected(
        gateway_settings: GatewaySettings, profiles_dir: Path, topic: Topic) -> None:
    settings = with_profiles(gateway_settings, profiles_dir, interval=0.05)
    async with GatewayService(settings) as gateway:
        async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{gateway.http_port}") as http:
            ready = (await http.get("/readyz")).json()
            assert ready["profiles"] == {"dir": str(profiles_dir), "loaded": ["alpha"],
                                         "generation": 1, "last_error": None}
            async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
                assert await send(client, "ALPHA", "A1") == "CA"
                assert await send(client, "BRAVO", "B1") == "CA"
                seen = await by_control_id(gateway, await topic.until(2))

                alpha, alpha_headers = seen["A1"]
                bravo, bravo_headers = seen["B1"]
                assert epix_system(alpha) == "https://alpha.example/sid/epix"
                assert alpha["Encounter"]["period"]["start"] == "2024-01-15T10:25:00+01:00"
                assert tier(alpha) == ["PLATINUM"]
                assert orjson.loads(alpha_headers["ce_hl7summary"])["profile"] == "alpha"
                # BRAVO: the built-in mapping, the gateway's default zone, no extension
                assert epix_system(bravo) == "urn:id:EPIX"
                assert bravo["Encounter"]["period"]["start"] == "2024-01-15T10:25:00+00:00"
                assert tier(bravo) == []
                assert orjson.loads(bravo_headers["ce_hl7summary"])["profile"] is None

                # Hot reload through the watcher; the same connection keeps going.
                write(profiles_dir / "alpha.yaml", PROFILE_V2)
                await wait_for(lambda: gateway.profiles.generation == 2)
                assert await send(client, "ALPHA", "A2") == "CA"
                alpha2, _ = (await by_control_id(gateway, await topic.until(3)))["A2"]
                assert epix_system(alpha2) == "https://alpha.example/sid/epix-v2"
                assert alpha2["Encounter"]["period"]["start"] == "2024-01-15T10:25:00+09:00"

                # A broken edit: rejected with file:line, the v2 profile keeps serving.
                write(profiles_dir / "alpha.yaml", BROKEN)
                await wait_for(lambda: gateway.profiles.last_error is not None)
                ready = await http.get("/readyz")
                assert ready.status_code == 200  # a bad edit does not make it unready
                state = ready.json()["profiles"]
                assert state["generation"] == 2 and state["loaded"] == ["alpha"]
                where = f"{profiles_dir}/alpha.yaml:5: identifier_sistems:"
                assert where in state["last_error"]
                assert await send(client, "ALPHA", "A3") == "CA"
                alpha3, _ = (await by_control_id(gateway, await topic.until(4)))["A3"]
                assert epix_system(alpha3) == "https://alpha.example/sid/epix-v2"

                # One connection all along: never dropped by the reloads.
                accepted = metric(gateway, "hl7gw_connections_accepted_total", listener="test")
                assert accepted == 1
                assert metric(gateway, "hl7gw_connections", listener="test") == 1
            text = (await http.get("/metrics")).text
        assert 'hl7gw_profile_reloads_total{result="ok"} 1.0' in text
        assert 'hl7gw_profile_reloads_total{result="rejected"} 1.0' in text
        assert "hl7gw_profiles_generation 2.0" in text
        assert "hl7gw_profiles_loaded 1.0" in text


@bounded(150)
async def test_sighup_reloads_the_profiles(gateway_settings: GatewaySettings,
                                           profiles_dir: Path, topic: Topic) -> None:
    # No polling: only the signal can make the edit live.
    settings = with_profiles(gateway_settings, profiles_dir, interval=0)
    async with GatewayService(settings, http=False) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as client:
            write(profiles_dir / "alpha.yaml", PROFILE_V2)
            await asyncio.sleep(0.3)
            assert gateway.profiles.generation == 1  # not watched: still v1
            assert await send(client, "ALPHA", "S1") == "CA"
            # Published before the signal: a row is mapped with the profiles live when the
            # publisher takes it, which may come after its ACK (docs/profiles.md).
            await topic.until(1)

            os.kill(os.getpid(), signal.SIGHUP)
            await wait_for(lambda: gateway.profiles.generation == 2)
            assert await send(client, "ALPHA", "S2") == "CA"
            seen = await by_control_id(gateway, await topic.until(2))
        assert epix_system(seen["S1"][0]) == "https://alpha.example/sid/epix"
        assert epix_system(seen["S2"][0]) == "https://alpha.example/sid/epix-v2"

        write(profiles_dir / "alpha.yaml", BROKEN)
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: gateway.profiles.last_error is not None)
        assert gateway.profiles.generation == 2
        assert "alpha.yaml:5:" in (gateway.profiles.last_error or "")
    # stop() gave SIGHUP back: the default action, not a handler of a stopped gateway
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL


@bounded(60)
async def test_a_broken_profile_folder_stops_the_start(gateway_settings: GatewaySettings,
                                                       profiles_dir: Path) -> None:
    write(profiles_dir / "alpha.yaml", BROKEN)
    gateway = GatewayService(with_profiles(gateway_settings, profiles_dir, interval=0),
                             http=False)
    with pytest.raises(ProfileError, match=r"alpha\.yaml:5: identifier_sistems"):
        await gateway.start()
    assert gateway.listeners == []  # nothing was bound
    await gateway.stop()
