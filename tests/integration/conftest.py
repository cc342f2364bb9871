"""Fixtures for integration tests: real uvicorn servers and a gateway on free ports."""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI

from connectors.cloud import create_app as create_function_app
from connectors.settings import BridgeSettings, KafkaSettings
from gateway.config import GatewaySettings, HttpSettings, ListenerSettings, SpoolSettings

pytestmark = pytest.mark.integration


P = ParamSpec("P")
R = TypeVar("R")


def bounded(seconds: float) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Fail an async test that runs longer than ``seconds`` instead of hanging."""

    def wrap(test: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(test)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            return await asyncio.wait_for(test(*args, **kwargs), seconds)

        return run

    return wrap


async def read_records(bootstrap: str, topic: str, count: int
                       ) -> list[ConsumerRecord[bytes, bytes]]:
    """The first ``count`` records of ``topic`` (all partitions), read with no group."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def free_port() -> int:
    """A port nobody listens on right now (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """A uvicorn server running in the test's event loop."""

    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]


async def start_server(app: FastAPI) -> RunningServer:
    """Serve ``app`` with a real uvicorn on a free loopback port until stopped."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return RunningServer(f"http://127.0.0.1:{port}", server, task)


async def stop_server(running: RunningServer) -> None:
    """Ask uvicorn to exit and wait for it."""
    running.server.should_exit = True
    await asyncio.wait_for(running.task, 10)


@pytest.fixture
async def function_server() -> AsyncIterator[RunningServer]:
    """The sample function app, served by a real uvicorn."""
    running = await start_server(create_function_app())
    yield running
    await stop_server(running)


@pytest.fixture
def gateway_settings(tmp_path: Path, kafka_bootstrap: str, kafka_topic: str,
                     function_server: RunningServer) -> GatewaySettings:
    """Settings for a gateway on free ports, a fresh spool file and a fresh topic."""
    return GatewaySettings(
        source="urn:hl7gw:test",
        listeners=[ListenerSettings(name="test", port=0)],
        http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "spool.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic),
        bridge=BridgeSettings(topic=kafka_topic, group_id=f"g-{kafka_topic}",
                              target_url=f"{function_server.url}/events",
                              backoff_initial_s=0.05, backoff_max_s=0.5),
    )
