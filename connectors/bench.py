"""Bridge throughput: events per second from Kafka through the bridge to a local function.

``run_bridge_bench`` produces ``count`` events over 10 to 50 keys to a fresh topic, serves the
sample function (a real uvicorn, in its own thread and event loop, as a deployed function
would be) and runs a :class:`Bridge` until every event has arrived. It also measures a
ceiling in the same run: the rate at which one HTTP client, with as many requests in
flight as the bridge can have (one per partition), POSTs events to the same function
without Kafka. Figures exclude the consumer group's start-up (reported separately).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

import httpx
import orjson
import uvicorn
from prometheus_client import CollectorRegistry

from connectors.bridge import Bridge
from connectors.cloud.app import create_app
from connectors.cloud.processor import MemoryStore
from connectors.errors import ConnectorError, PublishError
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.settings import BridgeSettings, FunctionSettings, KafkaSettings

SOURCE = "urn:hl7gw:bench"
START_TIMEOUT_S = 15.0


class _TimedStore(MemoryStore):
    """The sample store, also noting when each event arrived (bench only)."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.arrivals: list[tuple[str, float]] = []  # (event id, monotonic time)

    async def process(self, event: Event, bundle: dict[str, Any]) -> None:
        await super().process(event, bundle)
        self.arrivals.append((event.id, time.monotonic()))


class _ThreadedFunction:
    """The function app on a free loopback port, served by uvicorn in its own thread."""

    def __init__(self, store: MemoryStore, capacity: int) -> None:
        settings = FunctionSettings(max_events=capacity, dedupe_capacity=capacity)
        config = uvicorn.Config(create_app(store, settings=settings), host="127.0.0.1",
                                port=0, log_config=None, access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="bench-function",
                                        daemon=True)

    async def start(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConnectorError("the bench function did not start")
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/events"

    async def stop(self) -> None:
        self._server.should_exit = True
        await asyncio.to_thread(self._thread.join, START_TIMEOUT_S)


def bench_events(count: int, prefix: str = "evt") -> list[Event]:
    """``count`` events over 10 to 50 keys, each a small transaction Bundle."""
    keys = min(50, max(10, count // 40))
    events = []
    for n in range(count):
        key = f"bench-{n % keys:02d}"
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": f"urn:uuid:{key}", "resource": {"resourceType": "Patient", "id": key},
             "request": {"method": "PUT", "url": f"Patient/{key}"}}]}
        events.append(Event.new(source=SOURCE, type="hl7gw.fhir.adt.a08", key=key.encode(),
                                subject=f"Patient/{key}", id=f"{prefix}-{n:07d}",
                                data=orjson.dumps(bundle)))
    return events


async def _produce(kafka: KafkaSettings, topic: str, events: list[Event]) -> set[int]:
    async with EventProducer(kafka) as producer:
        results = await producer.send_batch(topic, events)
    failed = [r for r in results if isinstance(r, PublishError)]
    if failed:
        raise failed[0]
    return {r[0] for r in results if isinstance(r, tuple)}


async def _deliver_all(bridge: Bridge, store: _TimedStore, count: int) -> float:
    task = asyncio.create_task(bridge.run())
    started = time.monotonic()
    try:
        async with asyncio.timeout(max(120.0, count / 20)):
            while len(store.arrivals) < count:
                if task.done():
                    task.result()
                    raise ConnectorError("the bridge stopped before every event arrived")
                await asyncio.sleep(0.01)
    finally:
        await bridge.stop()
        await task
    return started


async def _ceiling(url: str, events: list[Event], concurrency: int) -> float:
    queue: asyncio.Queue[Event] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            event = queue.get_nowait()
            response = await client.post(url, content=event.data,
                                         headers={**event.http_headers(),
                                                  "idempotency-key": event.id})
            if response.status_code != 202:
                raise ConnectorError(f"ceiling POST answered HTTP {response.status_code}")

    async with httpx.AsyncClient(timeout=30) as client:
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker(client))
        return len(events) / (time.monotonic() - started)


def _in_order(events: list[Event], arrivals: list[tuple[str, float]]) -> bool:
    key_of = {e.id: e.key for e in events}
    produced: dict[bytes | None, list[str]] = defaultdict(list)
    received: dict[bytes | None, list[str]] = defaultdict(list)
    for event in events:
        produced[event.key].append(event.id)
    for event_id, _ in arrivals:
        received[key_of[event_id]].append(event_id)
    return produced == received


async def run_bridge_bench(kafka: KafkaSettings, count: int) -> dict[str, Any]:
    """Send ``count`` events through Kafka and the bridge to a local function; figures."""
    if count < 1:
        raise ValueError("count must be at least 1")
    topic = f"hl7gw-bench-{uuid.uuid4().hex[:12]}"
    events = bench_events(count)
    ceiling_events = bench_events(min(count, 2000), prefix="ceiling")
    store = _TimedStore(count + len(ceiling_events))
    function = _ThreadedFunction(store, count + len(ceiling_events))
    url = await function.start()
    try:
        partitions = await _produce(kafka, topic, events)
        settings = BridgeSettings(topic=topic, group_id=f"{topic}-bridge", target_url=url,
                                  dlq_topic=None)
        bridge = Bridge(settings, kafka, registry=CollectorRegistry())
        started = await _deliver_all(bridge, store, count)
        arrivals = list(store.arrivals[:count])
        ceiling = await _ceiling(url, ceiling_events, max(1, len(partitions)))
    finally:
        await function.stop()
    first, last = arrivals[0][1], arrivals[-1][1]
    seconds = max(last - first, 1e-9)
    rate = (count - 1) / seconds if count > 1 else 0.0
    return {
        "events": count,
        "keys": len({e.key for e in events}),
        "partitions": len(partitions),
        "startup_s": round(first - started, 3),
        "seconds": round(seconds, 3),
        "events_per_s": round(rate, 1),
        "in_order": _in_order(events, arrivals),
        "delivered": len({event_id for event_id, _ in arrivals}),
        "ceiling_posts_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(rate / ceiling, 3) if ceiling else None,
    }
