"""Flow control of the bridge: bounded per-partition queues, pause/resume, and lag."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from connectors.bridge import Bridge
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.settings import BridgeSettings, KafkaSettings

pytestmark = pytest.mark.integration


class HeldTarget:
    """Answers 200 at once, except for one subject, held until released."""

    def __init__(self, held_subject: str) -> None:
        self.held_subject = held_subject
        self.release = threading.Event()
        self.delivered: list[str] = []
        self.app = FastAPI()
        self.app.post("/events")(self.receive)

    async def receive(self, request: Request) -> JSONResponse:
        await request.body()
        if request.headers["ce-subject"] == self.held_subject:
            await asyncio.to_thread(self.release.wait, 60)
        self.delivered.append(request.headers["ce-id"])
        return JSONResponse({}, status_code=202)


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], str]]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None,
                                               access_log=False, lifespan="on"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.01)
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/events"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(15)


def event(key: str, n: int) -> Event:
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": {"resourceType": "Patient", "id": key}}]}
    return Event.new(source="urn:hl7gw:test", type="hl7gw.fhir.adt.a08", key=key.encode(),
                     subject=f"Patient/{key}", id=f"{key}-{n:03d}", data=orjson.dumps(bundle))


async def until(condition: Callable[[], bool], task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(45):
        while not condition():
            if task.done():
                task.result()
                raise AssertionError("bridge stopped early")
            await asyncio.sleep(0.02)


@pytest.mark.timeout(150)
async def test_full_partition_is_paused_others_flow_and_lag_is_reported(
        kafka_bootstrap: str, create_topic: Callable[..., Awaitable[str]],
        serve: Callable[[FastAPI], str]) -> None:
    topic = await create_topic(partitions=2)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    async with EventProducer(kafka) as producer:  # find one key per partition
        where = {key: await producer.send(topic, event(key, 0))
                 for key in (f"k-{n}" for n in range(12))}
    held = next(k for k, (p, _) in where.items() if p == 0)
    free = next(k for k, (p, _) in where.items() if p == 1)
    target = HeldTarget(f"Patient/{held}")
    settings = BridgeSettings(topic=topic, group_id=f"g-{topic}", target_url=serve(target.app),
                              queue_size=6, max_batch=4, timeout_s=70)
    registry = CollectorRegistry()
    bridge = Bridge(settings, kafka, registry=registry)
    task = asyncio.create_task(bridge.run())
    try:
        async with EventProducer(kafka) as producer:
            for n in range(1, 41):
                _, last_offset = await producer.send(topic, event(held, n))
            for n in range(1, 11):
                await producer.send(topic, event(free, n))
        free_ids = [f"{free}-{n:03d}" for n in range(11)]
        # The free partition flows although the other one is stuck on its first record.
        await until(lambda: all(i in target.delivered for i in free_ids), task)
        tp0 = next(tp for tp in bridge.queue_depths() if tp.partition == 0)
        await until(lambda: tp0 in bridge.paused(), task)
        await asyncio.sleep(1.0)  # polls go on; a paused partition fetches nothing more
        assert bridge.queue_depths()[tp0] <= settings.queue_size + settings.max_batch
        # Stuck on the held key's first record: everything from there on is lag, though
        # the paused partition fetches nothing (its high watermark is asked for).
        expected = last_offset + 1 - where[held][1]
        await until(lambda: registry.get_sample_value(
            "hl7gw_bridge_lag", {"topic": topic, "partition": "0"}) == expected, task)
        assert registry.get_sample_value("hl7gw_bridge_partition_pauses_total") >= 1
        target.release.set()
        held_ids = [e for e in (f"{held}-{n:03d}" for n in range(41))]
        await until(lambda: all(i in target.delivered for i in held_ids), task)
        await until(lambda: registry.get_sample_value(
            "hl7gw_bridge_lag", {"topic": topic, "partition": "0"}) == 0, task)
    finally:
        target.release.set()
        await bridge.stop()
        await task
    assert [i for i in target.delivered if i.startswith(f"{held}-")] == held_ids
    assert registry.get_sample_value("hl7gw_bridge_lag", {"topic": topic, "partition": "1"}) == 0
