"""The alert webhook over real sockets: a uvicorn receiver that fails, then accepts.

Retries with backoff on 5xx, no retry on a 4xx refusal, a receiver that never answers
well is reported as failed after the configured attempts; and the engine, measuring a real
spool, sends firing with the configured header and shows the delivery on its status.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from gateway.alerts.engine import AlertEngine, SpoolSources
from gateway.alerts.settings import AlertSettings, WebhookSettings
from gateway.alerts.webhook import Webhook
from gateway.spool import Spool
from gateway.spool.records import Accepted
from tests.integration.conftest import bounded, start_server, stop_server

pytestmark = pytest.mark.integration


def receiver(fail_first: int, status: int = 503) -> tuple[FastAPI, list[dict[str, Any]]]:
    """An app that answers ``status`` to the first ``fail_first`` posts, then 204."""
    app = FastAPI()
    seen: list[dict[str, Any]] = []

    @app.post("/hook")
    async def hook(request: Request) -> JSONResponse:
        seen.append({"body": await request.json(), "auth": request.headers.get("authorization"),
                     "at": time.monotonic()})
        if len(seen) <= fail_first:
            return JSONResponse({"error": "busy"}, status_code=status)
        return JSONResponse({}, status_code=204)

    return app, seen


def hook_settings(url: str, **extra: Any) -> WebhookSettings:
    return WebhookSettings.model_validate({"url": f"{url}/hook", "timeout_s": 2,
                                           "backoff_s": 0.2, "retries": 3, **extra})


@bounded(30)
async def test_fails_twice_then_accepts_with_backoff() -> None:
    app, seen = receiver(fail_first=2)
    server = await start_server(app)
    try:
        result = await Webhook(hook_settings(server.url)).send({"name": "r", "state": "firing"})
    finally:
        await stop_server(server)
    assert result.ok and result.attempts == 3 and result.error is None
    assert [s["body"] for s in seen] == [{"name": "r", "state": "firing"}] * 3
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(seen)]
    assert gaps[0] >= 0.15 and gaps[1] >= 0.3  # exponential: 0.2 s, then 0.4 s


@bounded(30)
async def test_gives_up_after_its_retries_and_says_why() -> None:
    app, seen = receiver(fail_first=100)
    server = await start_server(app)
    try:
        result = await Webhook(hook_settings(server.url, retries=1)).send({"name": "r"})
    finally:
        await stop_server(server)
    assert not result.ok and result.attempts == 2 and len(seen) == 2
    assert result.error == "the webhook answered HTTP 503"


@bounded(30)
async def test_a_4xx_refusal_is_not_retried() -> None:
    app, seen = receiver(fail_first=100, status=400)
    server = await start_server(app)
    try:
        result = await Webhook(hook_settings(server.url)).send({"name": "r"})
    finally:
        await stop_server(server)
    assert not result.ok and result.attempts == 1 and len(seen) == 1
    assert "HTTP 400" in (result.error or "")


@bounded(30)
async def test_nobody_listening_is_retried_then_failed() -> None:
    from tests.integration.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = await Webhook(hook_settings(url, retries=2, backoff_s=0.05)).send({"name": "r"})
    assert not result.ok and result.attempts == 3
    assert "cannot reach the webhook (ConnectError)" in (result.error or "")


@bounded(60)
async def test_engine_on_a_real_spool_sends_firing_with_its_header(tmp_path: Path) -> None:
    app, seen = receiver(fail_first=2)
    server = await start_server(app)
    spool = Spool(tmp_path / "spool.db")
    await spool.start()
    try:
        await spool.store(Accepted(
            listener="t", peer="127.0.0.1:1", sender="LAB|A", control_id="C1",
            message_type="ORU^R01", sha256="0" * 64, raw=b"MSH|^~\\&|LAB|A\r",
            ack=b"MSA|AA|C1\r", event_id="e1"))
        settings = AlertSettings.model_validate({
            "interval_s": 0.1,
            "rules": [{"name": "backlog", "kind": "spool_depth", "above": 0, "for": 0,
                       "severity": "critical"}],
            "webhook": {"url": f"{server.url}/hook", "backoff_s": 0.05, "retries": 3,
                        "headers": {"Authorization": SecretStr("Bearer hook-token")}}})
        engine = AlertEngine(settings, SpoolSources(spool), source="urn:gw:test",
                             registry=CollectorRegistry())
        [change] = await engine.evaluate()
        assert change.state == "firing"
        await engine.close(within=15)  # waits for the send in flight
    finally:
        await spool.stop()
        await stop_server(server)
    row = engine.status()[0]
    assert row["delivery"] == "sent (3 attempts)" and row["last_sent"] is not None
    body = seen[-1]["body"]
    assert seen[-1]["auth"] == "Bearer hook-token"
    assert body["name"] == "backlog" and body["state"] == "firing" and body["value"] == 1
    assert body["kind"] == "spool_depth" and body["severity"] == "critical"
    assert body["threshold"] == 0 and body["source"] == "urn:gw:test"
    assert "C1" not in str(body) and "LAB" not in str(body)  # no message content


class Depth:
    """Sources with a spool depth the test sets (the other kinds are not configured)."""

    def __init__(self) -> None:
        self.rows = 0

    async def depth(self) -> int:
        return self.rows

    async def last_seen(self, sender: str | None) -> float | None:
        raise AssertionError("not configured")

    async def oldest_pending(self) -> float | None:
        raise AssertionError("not configured")

    async def counts_since(self, since: float, sender: str | None) -> tuple[int, int]:
        raise AssertionError("not configured")

    async def dlq_total(self) -> int | None:
        raise AssertionError("not configured")


@bounded(30)
async def test_resolved_never_overtakes_a_firing_still_retrying() -> None:
    app, seen = receiver(fail_first=2)
    server = await start_server(app)
    src = Depth()
    try:
        settings = AlertSettings.model_validate({
            "rules": [{"name": "d", "kind": "spool_depth", "above": 0}],
            "webhook": {"url": f"{server.url}/hook", "backoff_s": 0.1, "retries": 3}})
        engine = AlertEngine(settings, src, source="urn:t", registry=CollectorRegistry())
        src.rows = 5
        assert [c.state for c in await engine.evaluate()] == ["firing"]
        src.rows = 0
        assert [c.state for c in await engine.evaluate()] == ["resolved"]
        await engine.close(within=15)  # waits for both sends
    finally:
        await stop_server(server)
    assert [s["body"]["state"] for s in seen] == ["firing"] * 3 + ["resolved"]
    assert engine.status()[0]["delivery"] == "sent (1 attempt)"
