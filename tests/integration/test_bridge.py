"""The bridge with real parts: the broker, uvicorn servers on loopback ports, real sockets.

Each function target runs in its own thread with its own event loop (a real uvicorn), so
the bridge talks to it over TCP exactly as it would to a deployed function.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from connectors.bridge import Bridge, run_bridge
from connectors.cloud import MemoryStore, create_app
from connectors.errors import ConnectorError, DeadLetterError
from connectors.events import Event
from connectors.kafka import EventProducer
from connectors.settings import BridgeSettings, KafkaSettings
from tests.integration.conftest import bounded, read_records

pytestmark = pytest.mark.integration



class ThreadedServer:
    """A real uvicorn server on a free loopback port, in its own thread and event loop."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None,
                                access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/events"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "uvicorn did not stop"


class Target:
    """A function target: answers ``fail_status`` to the first ``failures`` attempts of each
    event, then ``final``; can hold requests until released. Records every attempt."""

    def __init__(self, *, failures: int = 0, fail_status: int = 503, final: int = 200,
                 delay: float = 0.0) -> None:
        self.failures, self.fail_status, self.final = failures, fail_status, final
        self.delay = delay
        self.attempts: Counter[str] = Counter()
        self.delivered: list[str] = []  # ids answered 2xx, in arrival order
        self.hold = threading.Event()
        self.hold.set()
        self.app = FastAPI()
        self.app.post("/events")(self.receive)

    async def receive(self, request: Request) -> JSONResponse:
        event_id = request.headers["idempotency-key"]
        assert request.headers["ce-id"] == event_id
        await request.body()
        self.attempts[event_id] += 1
        await asyncio.to_thread(self.hold.wait, 30)
        await asyncio.sleep(self.delay)
        if self.attempts[event_id] <= self.failures:
            return JSONResponse({"error": "busy"}, status_code=self.fail_status)
        if 200 <= self.final < 300:
            self.delivered.append(event_id)
        return JSONResponse({"id": event_id}, status_code=self.final)


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], str]]:
    """``serve(app)`` -> URL of ``/events`` on a real uvicorn; stopped after the test."""
    servers: list[ThreadedServer] = []

    def start(app: FastAPI) -> str:
        server = ThreadedServer(app)
        url = server.__enter__()
        servers.append(server)
        return url

    yield start
    for server in servers:
        server.__exit__()


def bridge_settings(topic: str, url: str, **changes: Any) -> BridgeSettings:
    data: dict[str, Any] = {"topic": topic, "group_id": f"g-{topic}", "target_url": url,
                            "timeout_s": 5, "backoff_initial_s": 0.01, "backoff_max_s": 0.05}
    data.update(changes)
    return BridgeSettings.model_validate(data)


def fhir_event(key: str, n: int) -> Event:
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": {"resourceType": "Patient", "id": key}}]}
    return Event.new(source="urn:hl7gw:test", type="org.hl7gw.adt.a08", key=key.encode(),
                     subject=f"Patient/{key}", id=f"{key}-{n:03d}", data=orjson.dumps(bundle))


async def produce(kafka: KafkaSettings, topic: str, events: list[Event]) -> None:
    async with EventProducer(kafka) as producer:
        for event in events:
            await producer.send(topic, event)


@asynccontextmanager
async def running(bridge: Bridge) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``bridge`` in a task; stop it (drain, commit) and surface its errors after."""
    task = asyncio.create_task(bridge.run())
    try:
        yield task
    finally:
        await bridge.stop()
        await task


async def until(condition: Callable[[], bool], task: asyncio.Task[None]) -> None:
    """Wait (30 s at most) for ``condition``; fail at once with the bridge's error if it died."""
    try:
        async with asyncio.timeout(30):
            while not condition():
                if task.done():
                    task.result()
                    raise AssertionError("bridge stopped before the condition held")
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError("condition not reached in 30 s") from None


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels or None) or 0.0


@bounded(90)
async def test_events_reach_the_function_in_order_per_key(
        kafka_bootstrap: str, kafka_topic: str, serve: Callable[[FastAPI], str]) -> None:
    store = MemoryStore()
    url = serve(create_app(store))
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    keys = ["p-a", "p-b", "p-c", "p-d"]
    events = [fhir_event(key, n) for n in range(8) for key in keys]
    registry = CollectorRegistry()
    bridge = Bridge(bridge_settings(kafka_topic, url), kafka, registry=registry)
    async with running(bridge) as task:
        await produce(kafka, kafka_topic, events)
        await until(lambda: len(store.list_events()) == len(events), task)
    received = store.list_events()
    for key in keys:
        ids = [e["id"] for e in received if e["subject"] == f"Patient/{key}"]
        assert ids == [f"{key}-{n:03d}" for n in range(8)]
    assert received[0]["resource_types"] == ["Patient"]
    assert sample(registry, "hl7gw_bridge_deliveries_total", outcome="delivered") == 32
    assert sample(registry, "hl7gw_bridge_dlq_total") == 0


@bounded(90)
async def test_503_three_times_then_200_delivers_each_event_once(
        kafka_bootstrap: str, kafka_topic: str, serve: Callable[[FastAPI], str]) -> None:
    target = Target(failures=3, fail_status=503)
    url = serve(target.app)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    events = [fhir_event(f"p-{n % 3}", n) for n in range(6)]
    registry = CollectorRegistry()
    bridge = Bridge(bridge_settings(kafka_topic, url, max_attempts=5), kafka, registry=registry)
    async with running(bridge) as task:
        await produce(kafka, kafka_topic, events)
        await until(lambda: len(target.delivered) == len(events), task)
    assert sorted(target.delivered) == sorted(e.id for e in events)  # each exactly once
    assert target.attempts == {e.id: 4 for e in events}  # the retried ids, 3 failures each
    assert sample(registry, "hl7gw_bridge_attempts_total") == 24
    assert sample(registry, "hl7gw_bridge_deliveries_total", outcome="delivered") == 6
    assert sample(registry, "hl7gw_bridge_dlq_total") == 0


@bounded(90)
async def test_400_is_dead_lettered_with_error_headers(
        kafka_bootstrap: str, kafka_topic: str, serve: Callable[[FastAPI], str]) -> None:
    target = Target(final=400)
    url = serve(target.app)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    events = [fhir_event("p-x", n) for n in range(3)]
    registry = CollectorRegistry()
    bridge = Bridge(bridge_settings(kafka_topic, url), kafka, registry=registry)
    async with running(bridge) as task:
        await produce(kafka, kafka_topic, events)
        await until(lambda: sample(registry, "hl7gw_bridge_dlq_total") == 3, task)
    assert target.attempts == {e.id: 1 for e in events}  # a 400 is not retried
    originals = {(r.partition, r.offset): r
                 for r in await read_records(kafka_bootstrap, kafka_topic, 3)}
    dead = await read_records(kafka_bootstrap, f"{kafka_topic}.dlq", 3)
    for record in dead:
        headers = dict(record.headers)
        source = originals[(int(headers["dlq_partition"]), int(headers["dlq_offset"]))]
        assert (record.key, record.value) == (source.key, source.value)
        assert list(record.headers)[:len(source.headers)] == list(source.headers)
        assert headers["dlq_topic"] == kafka_topic.encode()
        assert headers["dlq_error_class"] == b"PermanentDeliveryError"
        assert b"HTTP 400" in headers["dlq_error_message"]
        assert headers["dlq_http_status"] == b"400"
        assert headers["dlq_attempts"] == b"1"
        assert headers["dlq_target"] == url.encode()
    assert sorted(dict(r.headers)["ce_id"].decode() for r in dead) == sorted(e.id for e in events)
    assert sample(registry, "hl7gw_bridge_deliveries_total", outcome="dead_lettered") == 3


@bounded(90)
async def test_record_that_is_not_a_cloudevent_is_dead_lettered(
        kafka_bootstrap: str, kafka_topic: str, serve: Callable[[FastAPI], str]) -> None:
    target = Target()
    url = serve(target.app)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    registry = CollectorRegistry()
    bridge = Bridge(bridge_settings(kafka_topic, url), kafka, registry=registry)
    async with running(bridge) as task:
        async with EventProducer(kafka) as producer:
            await producer.send_record(kafka_topic, key=b"k", value=b"MSH|^~\\&|raw",
                                       headers=[("origin", b"legacy")])
            await producer.send(kafka_topic, fhir_event("k", 1))
        await until(lambda: target.delivered == ["k-001"], task)
    [dead] = await read_records(kafka_bootstrap, f"{kafka_topic}.dlq", 1)
    headers = dict(dead.headers)
    assert dead.value == b"MSH|^~\\&|raw" and headers["origin"] == b"legacy"
    assert headers["dlq_error_class"] == b"InvalidEvent"
    assert headers["dlq_attempts"] == b"0"
    assert "dlq_http_status" not in headers


@bounded(120)
async def test_stop_commits_and_a_new_bridge_does_not_redeliver(
        kafka_bootstrap: str, kafka_topic: str, serve: Callable[[FastAPI], str]) -> None:
    target = Target()
    url = serve(target.app)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    settings = bridge_settings(kafka_topic, url)
    first = [fhir_event(f"p-{n % 3}", n) for n in range(9)]
    async with running(Bridge(settings, kafka, registry=CollectorRegistry())) as task:
        await produce(kafka, kafka_topic, first)
        await until(lambda: len(target.delivered) == 9, task)
    later = [fhir_event(f"p-{n % 3}", n) for n in range(9, 12)]
    await produce(kafka, kafka_topic, later)
    async with running(Bridge(settings, kafka, registry=CollectorRegistry())) as task:
        await until(lambda: len(target.delivered) >= 12, task)
        await asyncio.sleep(0.5)  # room for any redelivery to show up
    assert Counter(target.delivered) == {e.id: 1 for e in first + later}


@bounded(120)
async def test_stop_drains_the_record_in_flight_then_commits(
        kafka_bootstrap: str, kafka_topic: str, serve: Callable[[FastAPI], str]) -> None:
    target = Target()
    target.hold.clear()
    url = serve(target.app)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    settings = bridge_settings(kafka_topic, url)
    events = [fhir_event("p-1", n) for n in range(3)]  # one key: one partition, in order
    await produce(kafka, kafka_topic, events)
    bridge = Bridge(settings, kafka, registry=CollectorRegistry())
    async with running(bridge) as task:
        await until(lambda: sum(target.attempts.values()) == 1, task)
        stopping = asyncio.create_task(bridge.stop())
        await asyncio.sleep(0.3)
        assert not stopping.done()  # waiting for the request in flight
        target.hold.set()
        await stopping
    assert target.delivered == ["p-1-000"]  # finished; the rest left for the next member
    async with running(Bridge(settings, kafka, registry=CollectorRegistry())) as task:
        await until(lambda: len(target.delivered) == 3, task)
        await asyncio.sleep(0.5)
    assert target.delivered == ["p-1-000", "p-1-001", "p-1-002"]


@bounded(90)
async def test_without_dlq_an_undeliverable_event_stops_the_bridge_uncommitted(
        kafka_bootstrap: str, kafka_topic: str, serve: Callable[[FastAPI], str]) -> None:
    target = Target(final=400)
    url = serve(target.app)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    settings = bridge_settings(kafka_topic, url, dlq_topic=None)
    await produce(kafka, kafka_topic, [fhir_event("p-z", 0)])
    bridge = Bridge(settings, kafka, registry=CollectorRegistry())
    with pytest.raises(DeadLetterError, match="no dlq_topic"):
        await bridge.run()
    target.final = 200
    async with running(Bridge(settings, kafka, registry=CollectorRegistry())) as task:
        await until(lambda: target.delivered == ["p-z-000"], task)


@bounded(120)
async def test_rebalance_commits_on_revoke_so_nothing_is_delivered_twice(
        kafka_bootstrap: str, kafka_topic: str, serve: Callable[[FastAPI], str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="connectors.bridge")
    target = Target(delay=0.05)  # slow enough that the rebalance meets records in flight
    url = serve(target.app)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    settings = bridge_settings(kafka_topic, url)
    keys = [f"p-{n}" for n in range(6)]
    first = [fhir_event(key, n) for n in range(5) for key in keys]
    later = [fhir_event(key, n) for n in range(5, 10) for key in keys]
    async with running(Bridge(settings, kafka, registry=CollectorRegistry())) as one:
        await produce(kafka, kafka_topic, first)
        await until(lambda: len(target.delivered) >= 10, one)
        # A second member joins mid-stream: the first one's partitions are revoked,
        # drained and committed, then shared out.
        async with running(Bridge(settings, kafka, registry=CollectorRegistry())) as two:
            await produce(kafka, kafka_topic, later)
            await until(lambda: len(target.delivered) >= 60, two)
            await asyncio.sleep(0.5)
    assert any(r.getMessage() == "partitions revoked" and getattr(r, "partitions", None)
               for r in caplog.records)
    assert Counter(target.delivered) == {e.id: 1 for e in first + later}
    for key in keys:
        ids = [i for i in target.delivered if i.startswith(f"{key}-")]
        assert ids == [f"{key}-{n:03d}" for n in range(10)]


@bounded(90)
async def test_run_bridge_drains_and_returns_on_sigterm(
        kafka_bootstrap: str, kafka_topic: str, serve: Callable[[FastAPI], str]) -> None:
    assert threading.current_thread() is threading.main_thread()  # signal handlers need it
    before = signal.getsignal(signal.SIGTERM)
    target = Target()
    url = serve(target.app)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    settings = bridge_settings(kafka_topic, url)
    task = asyncio.create_task(run_bridge(settings, kafka))
    await produce(kafka, kafka_topic, [fhir_event("p-s", 0)])
    await until(lambda: target.delivered == ["p-s-000"], task)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 30)
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back
    await produce(kafka, kafka_topic, [fhir_event("p-s", 1)])
    async with running(Bridge(settings, kafka, registry=CollectorRegistry())) as again:
        await until(lambda: len(target.delivered) == 2, again)
    assert target.delivered == ["p-s-000", "p-s-001"]


@bounded(60)
@pytest.mark.parametrize("dlq_topic", ["t.dlq", None], ids=["dlq-producer", "consumer"])
async def test_unreachable_kafka_fails_run_with_a_retriable_error(
        dlq_topic: str | None) -> None:
    with socket.socket() as sock:  # a loopback port that refuses connections
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=2000)
    settings = bridge_settings("t", "http://127.0.0.1:9/events", dlq_topic=dlq_topic)
    bridge = Bridge(settings, kafka, registry=CollectorRegistry())
    with pytest.raises(ConnectorError) as caught:
        await bridge.run()
    assert caught.value.retriable is True
    await bridge.stop()  # a no-op once run() has returned
