"""The bridge's and the function's /healthz, /readyz and /metrics, scraped over HTTP.

The bridge runs as ``hl7gw bridge`` (its own process and probe port, as deployed); the
gateway and the function run here, each on a real uvicorn, against the real broker.
Events go through; the counters the alert rules and the dashboard read must have moved.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import GatewaySettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.service import GatewayService
from tests.integration.conftest import RunningServer, bounded, free_port
from tests.integration.test_end_to_end import function_events
from tests.support import SAMPLES, with_control_id

pytestmark = pytest.mark.integration

HL7GW = str(Path(sys.executable).with_name("hl7gw"))
A01 = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
EVENTS = 3


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total, found = 0.0, False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
                found = True
    assert found, f"{name}{labels} is not exposed"
    return total


async def get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.get(url, timeout=10)


async def until_ready(client: httpx.AsyncClient, url: str, bridge: subprocess.Popen[bytes],
                      within: float) -> httpx.Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        assert bridge.poll() is None, "hl7gw bridge exited"
        try:
            answer = await get(client, url)
            if answer.status_code == 200 or loop.time() > deadline:
                return answer
        except httpx.TransportError:
            assert loop.time() < deadline, "the bridge never served its probe port"
        await asyncio.sleep(0.2)


def bridge_config(tmp_path: Path, settings: GatewaySettings, port: int) -> Path:
    assert settings.bridge is not None
    path = tmp_path / "bridge.yaml"
    path.write_text(f"""\
kafka:
  bootstrap_servers: {settings.kafka.bootstrap_servers}
  topic: {settings.kafka.topic}
bridge:
  topic: {settings.bridge.topic}
  group_id: {settings.bridge.group_id}
  target_url: {settings.bridge.target_url}
  drain_timeout_s: 5
  http:
    host: 127.0.0.1
    port: {port}
""", encoding="utf-8")
    return path


def start_bridge(config: Path, bootstrap: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([HL7GW, "bridge", "--config", str(config)],
                            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_bridge(bridge: subprocess.Popen[bytes]) -> str:
    """SIGTERM, then what it said on stderr (killed if it does not end within 60 s)."""
    bridge.send_signal(signal.SIGTERM)
    try:
        _, err = bridge.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        bridge.kill()
        _, err = bridge.communicate()
    return err.decode()


@bounded(240)
async def test_bridge_and_function_metrics_move_when_events_flow(
        tmp_path: Path, gateway_settings: GatewaySettings,
        function_server: RunningServer) -> None:
    port = free_port()
    config = bridge_config(tmp_path, gateway_settings, port)
    bridge = start_bridge(config, gateway_settings.kafka.bootstrap_servers)
    probe = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            assert (await until_ready(client, f"{probe}/healthz", bridge, 90)).json() == {
                "status": "ok"}
            ready = await until_ready(client, f"{probe}/readyz", bridge, 90)
            assert ready.status_code == 200, ready.text
            assert ready.json()["kafka"] == "connected" and ready.json()["group"] == "joined"
            before = (await get(client, f"{probe}/metrics")).text
            assert metric(before, "hl7gw_bridge_deliveries_total", outcome="delivered") == 0

            async with GatewayService(gateway_settings) as gateway:
                async with MllpClient("127.0.0.1", gateway.listeners[0].port,
                                      timeout=30) as mllp:
                    for n in range(EVENTS):
                        await mllp.send(with_control_id(A01, f"SCRAPE{n}"))
                assert len(await function_events(function_server.url, expect=EVENTS,
                                                 wait_s=90)) == EVENTS
                gateway_text = (await get(
                    client, f"http://127.0.0.1:{gateway.http_port}/metrics")).text

            bridge_text = ""
            for _ in range(100):  # the bridge counts an event after the function's answer
                bridge_text = (await get(client, f"{probe}/metrics")).text
                if metric(bridge_text, "hl7gw_bridge_deliveries_total",
                          outcome="delivered") >= EVENTS:
                    break
                await asyncio.sleep(0.1)
            function_text = (await get(client, f"{function_server.url}/metrics")).text
            function_ready = await get(client, f"{function_server.url}/readyz")
    finally:
        err = await asyncio.to_thread(stop_bridge, bridge)
    assert bridge.returncode == 0, err

    # at-least-once: a record published twice after a failed send is delivered twice
    assert metric(bridge_text, "hl7gw_bridge_deliveries_total", outcome="delivered") >= EVENTS
    assert metric(bridge_text, "hl7gw_bridge_attempts_total") >= EVENTS
    assert metric(bridge_text, "hl7gw_bridge_delivery_seconds_count") >= EVENTS
    assert metric(bridge_text, "hl7gw_bridge_assigned_partitions") >= 1
    assert metric(bridge_text, "hl7gw_bridge_dlq_total") == 0
    assert metric(function_text, "hl7gw_function_events_total", result="accepted") == EVENTS
    assert metric(function_text, "hl7gw_function_event_seconds_count") >= EVENTS
    assert function_ready.status_code == 200
    assert metric(gateway_text, "hl7gw_published_total") >= EVENTS


@bounded(60)
async def test_a_taken_probe_port_is_one_error_naming_the_setting(
        tmp_path: Path, gateway_settings: GatewaySettings) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = int(taken.getsockname()[1])
        config = bridge_config(tmp_path, gateway_settings, port)
        done = await asyncio.to_thread(
            subprocess.run, [HL7GW, "bridge", "--config", str(config)],
            capture_output=True, text=True, timeout=50)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert f"127.0.0.1:{port}" in done.stderr and "bridge.http.port" in done.stderr
