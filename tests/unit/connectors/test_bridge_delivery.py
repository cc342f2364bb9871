"""Delivering one event over HTTP with retries, against an in-process mock transport."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from connectors.bridge.delivery import (
    DeliveryAbandoned,
    DeliveryResult,
    HttpTarget,
    max_poll_interval_ms,
    worst_case_s,
)
from connectors.bridge.dlq import dead_letter_headers, redact_url
from connectors.bridge.metrics import metrics_for
from connectors.errors import DeliveryError, InvalidEvent, PermanentDeliveryError
from connectors.events import Event
from connectors.settings import BridgeSettings

EVENT = Event(id="evt-1", source="urn:hl7gw:test", type="org.hl7gw.adt.a01",
              subject="Patient/p1", time="2024-05-01T10:00:00Z", key=b"p1",
              data=b'{"resourceType":"Bundle"}')
SETTINGS = BridgeSettings.model_validate({
    "target_url": "http://fn.test/events", "max_attempts": 4, "backoff_initial_s": 1.0,
    "backoff_max_s": 4.0, "headers": {"x-api-key": "k-1"}})


class Script:
    """Answers requests from a list of statuses (or exceptions) and records them."""

    def __init__(self, *answers: int | Exception, headers: dict[str, str] | None = None):
        self.answers = list(answers)
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, headers=self.headers, json={"echo": "not logged"})


async def deliver(script: Script, settings: BridgeSettings = SETTINGS
                  ) -> tuple[DeliveryResult, list[float], CollectorRegistry]:
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    registry = CollectorRegistry()
    async with httpx.AsyncClient(transport=httpx.MockTransport(script)) as client:
        target = HttpTarget(client, settings, metrics=metrics_for(registry), sleep=sleep,
                            jitter=lambda: 1.0)
        result = await target.deliver(EVENT)
    return result, sleeps, registry


async def test_binary_mode_request() -> None:
    script = Script(202)
    result, sleeps, _ = await deliver(script)
    request = script.requests[0]
    assert request.method == "POST" and str(request.url) == "http://fn.test/events"
    assert request.content == EVENT.data
    assert request.headers["idempotency-key"] == "evt-1"
    assert request.headers["ce-id"] == "evt-1"
    assert request.headers["ce-specversion"] == "1.0"
    assert request.headers["ce-partitionkey"] == "p1"
    assert request.headers["content-type"] == "application/fhir+json"
    assert request.headers["x-api-key"] == "k-1"
    assert result.delivered and result.attempts == 1 and sleeps == []


async def test_retries_5xx_then_delivers() -> None:
    script = Script(503, 503, 503, 200)
    result, sleeps, registry = await deliver(script)
    assert result.delivered and result.attempts == 4
    assert sleeps == [1.0, 2.0, 4.0]
    assert {r.headers["idempotency-key"] for r in script.requests} == {"evt-1"}
    assert registry.get_sample_value("hl7gw_bridge_attempts_total") == 4


async def test_retry_after_is_honoured() -> None:
    _, sleeps, _ = await deliver(Script(429, 200, headers={"retry-after": "3"}))
    assert sleeps == [3.0]


async def test_transport_errors_are_retried() -> None:
    result, sleeps, _ = await deliver(Script(httpx.ConnectError("refused"),
                                             httpx.ReadTimeout("slow"), 200))
    assert result.delivered and sleeps == [1.0, 2.0]


async def test_4xx_is_permanent_at_once() -> None:
    result, sleeps, _ = await deliver(Script(400))
    assert not result.delivered and sleeps == []
    error = result.error
    assert isinstance(error, PermanentDeliveryError)
    assert (error.status, error.attempts, error.retriable) == (400, 1, False)
    assert "not logged" not in str(error)


async def test_exhausted_retries() -> None:
    result, sleeps, _ = await deliver(Script(500, 500, 500, 500))
    error = result.error
    assert type(error) is DeliveryError
    assert (error.status, error.attempts) == (500, 4)
    assert len(sleeps) == 3


async def test_exhausted_on_transport_errors() -> None:
    result, _, _ = await deliver(Script(*[httpx.ConnectError("refused")] * 4))
    error = result.error
    assert type(error) is DeliveryError and error.status is None
    assert "ConnectError" in str(error)


async def test_stopping_abandons_during_backoff() -> None:
    async def sleep(delay: float) -> None:
        raise DeliveryAbandoned("stopping")

    async with httpx.AsyncClient(transport=httpx.MockTransport(Script(503, 200))) as client:
        target = HttpTarget(client, SETTINGS, metrics=metrics_for(CollectorRegistry()),
                            sleep=sleep)
        with pytest.raises(DeliveryAbandoned):
            await target.deliver(EVENT)


def test_dead_letter_headers() -> None:
    original = [("ce_id", b"evt-1"), ("dlq_topic", b"older"), ("content-type", b"x")]
    error = PermanentDeliveryError("function target refused at attempt 1: HTTP 400",
                                   status=400, attempts=1)
    headers = dead_letter_headers(original, topic="hl7.fhir", partition=2, offset=17,
                                  error=error, attempts=1, status=400,
                                  target="https://user:pw@fn.test:8443/events?code=SECRET#f")
    assert headers[:2] == [("ce_id", b"evt-1"), ("content-type", b"x")]
    assert dict(headers[2:]) == {
        "dlq_topic": b"hl7.fhir", "dlq_partition": b"2", "dlq_offset": b"17",
        "dlq_error_class": b"PermanentDeliveryError",
        "dlq_error_message": b"function target refused at attempt 1: HTTP 400",
        "dlq_attempts": b"1", "dlq_target": b"https://fn.test:8443/events",
        "dlq_http_status": b"400"}


def test_dead_letter_headers_without_status() -> None:
    headers = dict(dead_letter_headers([], topic="t", partition=0, offset=0,
                                       error=InvalidEvent("header ce_id is required"),
                                       attempts=0, status=None, target="http://h/e"))
    assert "dlq_http_status" not in headers
    assert headers["dlq_error_class"] == b"InvalidEvent"


def test_redact_url() -> None:
    assert redact_url("http://h:8080/a/b?x=1") == "http://h:8080/a/b"
    assert redact_url("https://fn.example") == "https://fn.example/"


def test_poll_interval_outlasts_a_batch_of_worst_case_deliveries() -> None:
    settings = BridgeSettings(target_url="http://h/e", max_attempts=3, timeout_s=2,
                              backoff_initial_s=1, backoff_max_s=4, retry_after_max_s=10,
                              max_batch=50)
    assert worst_case_s(settings) == 2 * 10 + 3 * 2
    assert max_poll_interval_ms(settings) == 50 * 26 * 1000
    assert max_poll_interval_ms(BridgeSettings(target_url="http://h/e", max_batch=1,
                                               max_attempts=1, timeout_s=1)) == 300_000
