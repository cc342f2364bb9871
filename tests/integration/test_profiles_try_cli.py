"""``hl7gw profiles try`` on a spool a real gateway wrote (sealed at rest), as a real process.

The recorded sample: SUNLAB's ORU^R01 messages from samples/ (and an ADT from another
sender) sent over MLLP, spooled and published to a real broker. The trial must report the
changed outputs and change nothing: the spool file, its WAL and the journal hash the same
before and after, and the topic's end offsets do not move.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from gateway.ack import ack_code_of
from gateway.config import GatewaySettings, ProfilesSettings
from gateway.keys.manage import init_keys
from gateway.keys.settings import EncryptionSettings
from gateway.mllp.client import MllpClient
from gateway.service import GatewayService
from gateway.spool import MessageFilter
from tests.integration.conftest import bounded
from tests.support import MESSAGES, PROFILES, SAMPLES, with_control_id

pytestmark = pytest.mark.integration

HL7GW = Path(sys.executable).parent / "hl7gw"
SUNLAB = [(MESSAGES / name).read_bytes().replace(b"\n", b"\r").strip(b"\r") + b"\r"
          for name in ("oru_r01.hl7", "oru_r01_10obx.hl7")]
ADT = (SAMPLES / "adt_a01.hl7").read_bytes().split(b"\n\n")[0].replace(b"\n", b"\r")
FLIPPED = (PROFILES / "sunlab.yaml").read_text().replace("    LOWISH: L\n",
                                                          "    LOWISH: L\n    H: L\n")


def fingerprint(tmp_path: Path) -> dict[str, str]:
    """sha256 of the spool file, its -wal and every journal file (what a writer changes)."""
    found = [p for p in tmp_path.rglob("*") if p.is_file()
             and p.relative_to(tmp_path).parts[0].startswith("spool.db")]
    return {str(p.relative_to(tmp_path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(found) if not p.name.endswith("-shm")}


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    # subscribed (no group, nothing committed): start() fetches the topic's metadata
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert parts, f"no partitions for {topic}"
        ends = await consumer.end_offsets(parts)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def hl7gw(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(HL7GW), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@bounded(180)
async def test_try_reports_changes_and_changes_nothing(
        gateway_settings: GatewaySettings, tmp_path: Path, kafka_bootstrap: str,
        kafka_topic: str) -> None:
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES, folder)
    keys = EncryptionSettings(provider="file", key_file=tmp_path / "keys.json")
    init_keys(keys)
    settings = gateway_settings.model_copy(update={
        "profiles": ProfilesSettings(dir=folder, watch_interval_s=0), "encryption": keys})
    config = tmp_path / "gateway.yaml"
    config.write_text(f"spool:\n  path: {settings.spool.path}\n"
                      f"profiles:\n  dir: {folder}\n"
                      f"encryption:\n  provider: file\n  key_file: {keys.key_file}\n"
                      f"kafka:\n  bootstrap_servers: {kafka_bootstrap}\n  topic: {kafka_topic}\n"
                      f"console:\n  audit_path: {tmp_path / 'audit.jsonl'}\n")
    candidate = tmp_path / "sunlab-next.yaml"
    candidate.write_text(FLIPPED)

    async with GatewayService(settings) as gateway:
        async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=10) as mllp:
            for n in range(3):
                for i, message in enumerate(SUNLAB):
                    ack = await mllp.send(with_control_id(message, f"LAB-{n}-{i}"))
                    assert ack_code_of(ack.decode()) in ("AA", "CA")
            assert ack_code_of((await mllp.send(with_control_id(ADT, "ADT-1"))).decode()
                               ) in ("AA", "CA")
        for _ in range(300):
            rows = await gateway.spool.find(MessageFilter(), limit=20)
            if len(rows) == 7 and all(r.status == "published" for r in rows):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"not all published: {[r.status for r in rows]}")
        # while the gateway runs (its WAL open), the trial reads what is committed
        code, out, err = await hl7gw("profiles", "try", str(candidate), "--config",
                                     str(config), "--json")
        assert code == 0, err
        assert json.loads(out)["tried"] == 6

    sealed = settings.spool.path.read_bytes()
    assert b"LAB-0-0" in sealed and b"Quinn" not in sealed  # bodies sealed at rest
    before = fingerprint(tmp_path)
    assert "spool.db" in before and any("journal" in k for k in before)
    offsets = await end_offsets(kafka_bootstrap, kafka_topic)
    assert sum(offsets.values()) == 7

    code, out, err = await hl7gw("profiles", "try", str(candidate), "--config", str(config),
                                 "--since", "1h", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["profile"] == "sunlab" and report["replaces"].endswith("sunlab.yaml")
    assert report["senders"] == "SUNLAB^RIVERSIDE"
    assert report["tried"] == 6 and report["changed"] == 6 and report["now_failing"] == 0
    elements = {e["element"]: e["messages"] for e in report["elements"]}
    assert elements["Observation.interpretation.coding.code"] == 6
    assert {(x["before"], x["after"]) for x in report["examples"]
            if x["element"] == "Observation.interpretation.coding.code"} == {("H", "L")}

    # the readable summary, --last and --sender
    code, out, err = await hl7gw("profiles", "try", str(candidate), "--config", str(config),
                                 "--last", "2")
    assert code == 0, err
    assert "tried 2 message(s)" in out and "2 changed" in out
    assert "Observation.interpretation.coding.code" in out
    assert f"put the file at {folder}/sunlab.yaml" in out
    code, out, _ = await hl7gw("profiles", "try", str(candidate), "--config", str(config),
                               "--sender", "EPICADT^GOODHEALTH", "--json")
    assert code == 0 and json.loads(out)["tried"] == 1 and json.loads(out)["changed"] == 0

    # nothing changed: spool, WAL, journal, the live profile, the topic
    assert fingerprint(tmp_path) == before
    assert (folder / "sunlab.yaml").read_text() == (PROFILES / "sunlab.yaml").read_text()
    assert await end_offsets(kafka_bootstrap, kafka_topic) == offsets

    # a bad profile: exit 2, file:line: field, nothing tried
    broken = tmp_path / "broken.yaml"
    broken.write_text(FLIPPED.replace('"0078":', '"9999":'))
    code, out, err = await hl7gw("profiles", "try", str(broken), "--config", str(config))
    assert code == 2 and out == ""
    assert f"{broken}:" in err and "codes.9999: unknown code table" in err
    assert "nothing was tried" in err
    assert fingerprint(tmp_path) == before
