"""SIGHUP reloads the spool's keyring in a running gateway: after ``hl7gw keys rotate``
new messages are sealed under the new key without a restart (real MLLP socket, SQLite
spool, journal and Kafka broker); a key file that lost a key in use is refused and the
keys in use stay."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.ack import ack_code_of
from gateway.config import GatewaySettings
from gateway.keys.keyring import Keyring
from gateway.keys.manage import init_keys, rotate_keys
from gateway.keys.providers import load_keyring
from gateway.keys.settings import EncryptionSettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.integration.conftest import bounded
from tests.support import SAMPLES

pytestmark = pytest.mark.integration
SAMPLE = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]


def numbered(control_id: str) -> bytes:
    msh, rest = SAMPLE.split(b"\r", 1)
    fields = msh.split(b"|")
    fields[9] = control_id.encode()
    return b"|".join(fields) + b"\r" + rest


async def until(holds: Callable[[], bool], within: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not holds():
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def sealed_under(spool: Path, ring: Keyring) -> dict[str, str]:
    """Control id -> the key id its stored body was sealed under (each body opened with
    ``ring`` and checked to be the message sent)."""
    conn = sqlite3.connect(spool)
    try:
        rows = conn.execute("SELECT id, control_id, raw FROM messages").fetchall()
    finally:
        conn.close()
    found = {}
    for row_id, cid, raw in rows:
        assert ring.decrypt(bytes(raw), f"messages:{row_id}:raw".encode()) == numbered(cid)
        found[str(cid)] = ring.key_id_of(bytes(raw))
    return found


@bounded(120)
async def test_sighup_after_a_rotation_seals_new_messages_under_the_new_key(
        gateway_settings: GatewaySettings, tmp_path: Path) -> None:
    keys = EncryptionSettings(provider="file", key_file=tmp_path / "keys.json")
    first = init_keys(keys)
    settings = gateway_settings.model_copy(update={"encryption": keys})
    gateway = GatewayService(settings, http=False)
    await gateway.start()

    def reloads(result: str) -> float:
        return gateway.registry.get_sample_value(
            "hl7gw_keyring_reloads_total", {"result": result}) or 0.0

    def live_key() -> float | None:
        keyring = gateway.spool.sealer.keyring
        assert keyring is not None
        return gateway.registry.get_sample_value("hl7gw_keyring_info", {
            "current_key": keyring.current_key_id, "keys": str(len(keyring.key_ids))})

    try:
        assert live_key() == 1.0
        port = gateway.listeners[0].port
        assert port is not None
        async with MllpClient("127.0.0.1", port, timeout=30) as client:
            assert ack_code_of((await client.send(numbered("K1"))).decode()) == "CA"
            await gateway.spool.flush()  # K1 in SQLite (rows reach it up to 20 ms late)
            before_rotation = keys.key_file.read_bytes()
            second = rotate_keys(keys)
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: reloads("ok") == 1)
            assert live_key() == 1.0  # the new current key, 2 keys
            assert ack_code_of((await client.send(numbered("K2"))).decode()) == "CA"

            # Back to a key file without the key now in use: records sealed under it would
            # become unreadable, so the reload is refused and the keys in use stay.
            rotated = keys.key_file.read_bytes()
            keys.key_file.write_bytes(before_rotation)
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: reloads("rejected") == 1)
            assert gateway.spool.sealer.keyring is not None
            assert gateway.spool.sealer.keyring.current_key_id == second.key_id
            assert ack_code_of((await client.send(numbered("K3"))).decode()) == "CA"
        await gateway.spool.flush()
    finally:
        await gateway.stop()
    keys.key_file.write_bytes(rotated)
    ring = load_keyring(keys)
    assert sealed_under(settings.spool.path, ring) == {
        "K1": first.key_id, "K2": second.key_id, "K3": second.key_id}
