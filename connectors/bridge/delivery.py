"""Delivery of one event to an HTTP function target, retried with tenacity.

The retry decisions come from :func:`connectors.bridge.retry.plan_retry`; tenacity runs
the loop, waits the planned delay and stops at ``max_attempts``. httpx errors end here:
what leaves this module is a :class:`DeliveryResult` carrying a connector error.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt

from connectors import tracing
from connectors.bridge.metrics import BridgeMetrics
from connectors.bridge.retry import Action, RetryPolicy, is_retriable, parse_retry_after, plan_retry
from connectors.errors import ConnectorError, DeliveryError, PermanentDeliveryError
from connectors.events import Event
from connectors.results import fhir_answer
from connectors.settings import BridgeSettings

USER_AGENT = "hl7gw-bridge/0.1"


class DeliveryAbandoned(ConnectorError):
    """The bridge is stopping; the event was neither delivered nor dead-lettered."""

    retriable = True


@dataclass(frozen=True)
class Attempt:
    """The outcome of one HTTP attempt and what the policy planned after it."""

    number: int
    action: Action
    delay: float
    status: int | None = None
    error: BaseException | None = None
    result: bytes | None = None  # a 200/201 body that is a FHIR resource


@dataclass(frozen=True)
class DeliveryResult:
    """How delivering one event ended: delivered, or the error to dead-letter it with."""

    delivered: bool
    attempts: int
    status: int | None = None
    error: ConnectorError | None = None
    result: bytes | None = None  # the function's FHIR answer, to publish (connectors.results)


def policy_of(settings: BridgeSettings) -> RetryPolicy:
    """The retry bounds configured for a bridge."""
    return RetryPolicy(max_attempts=settings.max_attempts,
                       backoff_initial_s=settings.backoff_initial_s,
                       backoff_max_s=settings.backoff_max_s,
                       retry_after_max_s=settings.retry_after_max_s)


def worst_case_s(settings: BridgeSettings) -> float:
    """The longest one event can take to deliver or give up (every wait at its ceiling)."""
    policy = policy_of(settings)
    waits = sum(max(min(policy.backoff_max_s, policy.backoff_initial_s * 2.0 ** (n - 1)),
                    policy.retry_after_max_s) for n in range(1, policy.max_attempts))
    return waits + policy.max_attempts * settings.timeout_s


def max_poll_interval_ms(settings: BridgeSettings) -> int:
    """A consumer poll interval that a batch of slow deliveries cannot exceed.

    A member that takes longer than this between polls is dropped from the group, and the
    records it finished but could not commit are delivered again. Kafka's default (5 min)
    is kept as the floor.
    """
    return max(300_000, math.ceil(settings.max_batch * worst_case_s(settings) * 1000))


class HttpTarget:
    """POSTs events in CloudEvents binary mode to one URL, with an ``Idempotency-Key``."""

    def __init__(self, client: httpx.AsyncClient, settings: BridgeSettings, *,
                 metrics: BridgeMetrics, sleep: Callable[[float], Awaitable[None]],
                 jitter: Callable[[], float] = random.random) -> None:
        self._client = client
        self._url = settings.target_url
        self._extra = {name: value.get_secret_value() for name, value in settings.headers.items()}
        self._policy = policy_of(settings)
        self._metrics = metrics
        self._sleep = sleep
        self._jitter = jitter

    def request_headers(self, event: Event) -> dict[str, str]:
        """Configured headers, the CloudEvents ones, the idempotency key and, while tracing,
        the W3C ``traceparent`` of the current (delivery) span."""
        return {**self._extra, **event.http_headers(), "idempotency-key": event.id,
                "user-agent": USER_AGENT, **tracing.http_headers()}

    async def deliver(self, event: Event) -> DeliveryResult:
        """Deliver with retries; raises only :class:`DeliveryAbandoned` (when stopping)."""
        headers = self.request_headers(event)
        numbers = itertools.count(1)

        async def attempt() -> Attempt:
            return await self._attempt(next(numbers), event.data, headers)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._policy.max_attempts),
            retry=retry_if_result(lambda a: a.action is Action.RETRY),
            wait=_planned_delay,
            sleep=self._sleep,
            retry_error_callback=_last_attempt,
            reraise=True,
        )
        last: Attempt = await retrying(attempt)
        return _result(last)

    async def _attempt(self, number: int, body: bytes, headers: dict[str, str]) -> Attempt:
        self._metrics.attempts.inc()
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            action, delay = plan_retry(exc, number, None, self._policy, jitter=self._jitter())
            return Attempt(number, action, delay, error=exc)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        action, delay = plan_retry(response.status_code, number, retry_after, self._policy,
                                   jitter=self._jitter())
        result = None
        if action is Action.DONE and response.status_code in (200, 201):
            result = fhir_answer(response.headers.get("content-type"), response.content)
        return Attempt(number, action, delay, status=response.status_code, result=result)


def _planned_delay(state: RetryCallState) -> float:
    assert state.outcome is not None
    attempt: Attempt = state.outcome.result()
    return attempt.delay


def _last_attempt(state: RetryCallState) -> Attempt:
    assert state.outcome is not None
    attempt: Attempt = state.outcome.result()
    return attempt


def _result(last: Attempt) -> DeliveryResult:
    if last.action is Action.DONE:
        return DeliveryResult(delivered=True, attempts=last.number, status=last.status,
                              result=last.result)
    outcome: int | BaseException = last.error if last.error is not None else last.status or 0
    what = (f"HTTP {last.status}" if last.error is None
            else f"{type(last.error).__name__}: {last.error}")
    error_type = DeliveryError if is_retriable(outcome) else PermanentDeliveryError
    verb = "gave up after" if error_type is DeliveryError else "refused at"
    error = error_type(f"function target {verb} attempt {last.number}: {what}",
                       status=last.status, attempts=last.number)
    return DeliveryResult(delivered=False, attempts=last.number, status=last.status, error=error)
