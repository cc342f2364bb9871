"""The gateway's HTTP app with the console, over a real SQLite spool and a fake runtime.

For unit tests of the console's boundaries (roles, validation, fuzzing): the app is the
real ``create_app``; what stands in is only the running gateway around it (no MLLP
listeners, no Kafka: a publisher that counts its wake-ups).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from gateway.app import create_app
from gateway.config import ConsoleSettings, ConsoleUser, GatewaySettings
from gateway.intake import Intake
from gateway.metrics import GatewayMetrics
from gateway.spool import Accepted, MessageFilter, PublishedMark, Rejected, Spool

OPERATOR, VIEWER = "op-token-0123456789", "viewer-token-0123456789"
A01 = (b"MSH|^~\\&|EPICADT|GOODHEALTH|HL7GW|HUB|20240601120500||ADT^A01|C-1|P|2.5\r"
       b"EVN|A01|20240601120500\rPID|1||4711^^^HOSP^MR||Everyman^Adam||19800101|M\r"
       b"PV1|1|I\r")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class FakePublisher:
    """Counts wake-ups (a replay nudges the publisher); always "connected"."""

    def __init__(self) -> None:
        self.connected = True
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


@dataclass
class FakeRuntime:
    """What ``create_app`` and the console need from a running gateway."""

    settings: GatewaySettings
    spool: Spool
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    intakes: Mapping[str, Intake] = field(default_factory=dict)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        return True, {}


def settings_for(tmp_path: Path, *, enabled: bool = True) -> GatewaySettings:
    def user(name: str, role: str, token: str) -> ConsoleUser:
        return ConsoleUser(name=name, role=role,
                           token_sha256=hashlib.sha256(token.encode()).hexdigest())
    console = ConsoleSettings(enabled=enabled, audit_path=tmp_path / "audit.jsonl",
                              users=[user("olga", "operator", OPERATOR),
                                     user("vic", "viewer", VIEWER)])
    return GatewaySettings.model_validate({
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic": "t"},
        "spool": {"path": str(tmp_path / "spool.db")}, "console": console.model_dump()})


async def fill(spool: Spool) -> None:
    """Three messages (one published, one failed, one pending) and one refused message."""
    ids = []
    for n in range(3):
        raw = A01.replace(b"|C-1|", f"|C-{n}|".encode())
        outcome = await spool.store(Accepted(
            listener="lab", peer="10.0.0.1:5000", sender="EPICADT|GOODHEALTH",
            control_id=f"C-{n}", message_type="ADT^A01", sha256=f"sha-{n}", raw=raw,
            ack=b"MSH|^~\\&|ACK\rMSA|CA|C-" + str(n).encode() + b"\r", event_id=f"ev-{n}"))
        ids.append(outcome.row_id)
    await spool.mark_published([PublishedMark(ids[0], "t", 0, 1)])
    await spool.mark_failed(ids[1], "mapping failed")
    await spool.store(Rejected(listener="lab", peer="10.0.0.1:5000", sender="X|Y",
                               control_id="R-1", ack_code="AR", err_code="200",
                               reason="unsupported message type", raw=b"MSH|^~\\&|X|Y",
                               ack=b"MSA|AR|R-1"))


@asynccontextmanager
async def running_app(tmp_path: Path, *, enabled: bool = True, filled: bool = True
                      ) -> AsyncIterator[tuple[httpx.AsyncClient, FakeRuntime, FastAPI]]:
    """An HTTP client on the real app (in process: no lifespan, so no dashboard sampler).

    An exception escaping the app is answered 500, as uvicorn would, not raised here:
    the tests look for 500s.
    """
    settings = settings_for(tmp_path, enabled=enabled)
    spool = Spool(settings.spool.path)
    runtime = FakeRuntime(settings=settings, spool=spool)
    app = create_app(runtime, console=runtime)  # type: ignore[arg-type]
    await spool.start()
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    try:
        if filled:
            await fill(spool)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client, runtime, app
    finally:
        await spool.stop()


def app_only(tmp_path: Path, *, enabled: bool = True) -> FastAPI:
    """The app, not started: for looking at its routes."""
    settings = settings_for(tmp_path, enabled=enabled)
    runtime = FakeRuntime(settings=settings, spool=Spool(settings.spool.path))
    return create_app(runtime, console=runtime)  # type: ignore[arg-type]


async def replays_of(spool: Spool) -> dict[str, int]:
    """control id -> replay count."""
    return {m.control_id: m.replays for m in await spool.find(MessageFilter(), limit=100)}
