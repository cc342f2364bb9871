"""Killing the bridge process mid-stream and starting a new one loses nothing.

The bridge runs as the real command (``hl7gw bridge --config FILE``) in a subprocess, is
SIGKILLed half-way through 300 events, and a second process takes over from the committed
offsets. The function (a real uvicorn) sees every event at least once and processes each
``ce-id`` exactly once; the bridge authenticates with the configured API key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
import yaml
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from connectors.cloud import MemoryStore, create_app
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.settings import FunctionSettings, KafkaSettings

pytestmark = pytest.mark.integration

HL7GW = Path(sys.executable).parent / "hl7gw"
API_KEY = "bridge-key-5b1f"
COUNT, KEYS = 300, 30


class CountingStore(MemoryStore):
    """The sample store, counting how often the processor ran per event id."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.processed: Counter[str] = Counter()
        self.order: list[str] = []

    async def process(self, event: Event, bundle: dict[str, Any]) -> None:
        await super().process(event, bundle)
        self.processed[event.id] += 1
        self.order.append(event.id)


def function_app(store: CountingStore, posts: Counter[str]) -> FastAPI:
    app = create_app(store, settings=FunctionSettings(max_events=COUNT * 2))

    @app.middleware("http")
    async def api_key_and_count(request: Request,
                                call_next: Callable[[Request], Awaitable[Response]]
                                ) -> Response:
        if request.headers.get("x-api-key") != API_KEY:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if request.method == "POST":
            posts[request.headers.get("ce-id", "")] += 1
        return await call_next(request)

    return app


@dataclass
class Function:
    """The running function: its URL, its store and the POSTs it saw per ce-id."""

    url: str
    store: CountingStore
    posts: Counter[str]


@pytest.fixture
def function() -> Iterator[Function]:
    store, posts = CountingStore(COUNT * 2), Counter[str]()
    app = function_app(store, posts)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None,
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Function(f"http://127.0.0.1:{port}/events", store, posts)
    server.should_exit = True
    thread.join(15)


def events() -> list[Event]:
    out = []
    for n in range(COUNT):
        key = f"p-{n % KEYS:02d}"
        bundle = {"resourceType": "Bundle", "type": "transaction",
                  "entry": [{"resource": {"resourceType": "Patient", "id": key}}]}
        out.append(Event.new(source="urn:hl7gw:test", type="hl7gw.fhir.adt.a08",
                             key=key.encode(), subject=f"Patient/{key}", id=f"{key}-{n:04d}",
                             data=orjson.dumps(bundle)))
    return out


def write_config(path: Path, bootstrap: str, topic: str, url: str) -> Path:
    config = {"kafka": {"bootstrap_servers": bootstrap, "topic": topic},
              "bridge": {"topic": topic, "group_id": f"g-{topic}", "target_url": url,
                         "timeout_s": 5, "backoff_initial_s": 0.05, "backoff_max_s": 0.5,
                         "auth": {"type": "api_key", "header": "x-api-key",
                                  "value": API_KEY},
                         "http": {"port": 0}}}  # probes on any free port
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start_bridge(config: Path, bootstrap: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    with log.open("ab") as out:
        return subprocess.Popen([str(HL7GW), "bridge", "--config", str(config),
                                 "--log-level", "warning"], stdout=out, stderr=out, env=env)


def tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


async def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path,
                   seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"bridge exited with {proc.returncode}:\n{tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"not reached in {seconds} s:\n{tail(log)}")
        await asyncio.sleep(0.01)


@pytest.mark.timeout(240)
async def test_sigkill_mid_stream_then_restart_loses_nothing(
        kafka_bootstrap: str, create_topic: Callable[..., Awaitable[str]],
        function: Function, tmp_path: Path) -> None:
    store, posts = function.store, function.posts
    topic = await create_topic(partitions=3)
    sent = events()
    async with EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap)) as producer:
        results = await producer.send_batch(topic, sent)
    assert all(isinstance(r, tuple) for r in results)
    config = write_config(tmp_path / "bridge.yaml", kafka_bootstrap, topic, function.url)
    log = tmp_path / "bridge.log"

    first = start_bridge(config, kafka_bootstrap, log)
    try:
        await wait_for(lambda: len(store.processed) >= COUNT // 2, first, log, 90)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    at_kill = len(store.processed)
    assert first.returncode == -signal.SIGKILL
    assert at_kill < COUNT, "the stream finished before the kill; nothing was tested"

    second = start_bridge(config, kafka_bootstrap, log)
    try:
        await wait_for(lambda: len(store.processed) >= COUNT, second, log, 120)
        await asyncio.sleep(1.0)  # room for stray redeliveries to show up
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    assert second.returncode == 0, tail(log)

    ids = [e.id for e in sent]
    assert set(posts) == set(ids)  # every event arrived at least once, with the API key
    assert store.processed == {i: 1 for i in ids}  # repeats were deduplicated by ce-id
    assert sorted(e["id"] for e in store.list_events()) == sorted(ids)
    repeats = sum(posts.values()) - COUNT
    assert repeats >= 0
    for key in {e.key for e in sent}:
        assert key is not None
        expected = [e.id for e in sent if e.key == key]
        assert [i for i in store.order if i.startswith(key.decode() + "-")] == expected
    print(f"killed after {at_kill} events; {repeats} repeated deliveries deduplicated")
