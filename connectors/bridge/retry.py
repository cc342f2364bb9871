"""Retry policy for function targets, as pure functions (no clock, no randomness inside).

``plan_retry`` maps the outcome of one delivery attempt to what happens next:

========================================  ==========================================
outcome                                   action
========================================  ==========================================
2xx                                       DONE
404, 408, 409, 429, 5xx                   RETRY (DEAD_LETTER once attempts run out)
httpx.TransportError (connect, timeout)   RETRY (DEAD_LETTER once attempts run out)
any other status (1xx, 3xx, other 4xx)    DEAD_LETTER at once
any other exception                       DEAD_LETTER at once
========================================  ==========================================

404 is retried because a function URL or route that is being (re)deployed answers 404 for
a while; 409 because the sample function answers 409 while the same event id is in flight.
The delay is exponential with jitter, ``initial * 2**(attempt-1)`` capped at ``max``, of
which the caller-supplied ``jitter`` in [0, 1] keeps the upper half ("equal jitter", so a
retry never comes back at once). A ``Retry-After`` the target sent wins, capped at
``retry_after_max_s``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRIABLE_STATUSES = frozenset({404, 408, 409, 429})
MAX_RETRY_AFTER_S = 86_400.0 * 365  # a year: any longer Retry-After reads as this


class Action(enum.Enum):
    """What to do after one delivery attempt."""

    DONE = "done"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for retrying one event."""

    max_attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0


def is_retriable(outcome: int | BaseException) -> bool:
    """Whether this status or exception is worth another attempt."""
    if isinstance(outcome, BaseException):
        return isinstance(outcome, httpx.TransportError)
    return outcome in RETRIABLE_STATUSES or 500 <= outcome <= 599


def backoff(attempt: int, policy: RetryPolicy, jitter: float) -> float:
    """Delay before the attempt after ``attempt`` (1-based), with equal jitter."""
    ceiling = min(policy.backoff_max_s, policy.backoff_initial_s * 2.0 ** (attempt - 1))
    return ceiling / 2 + ceiling / 2 * min(max(jitter, 0.0), 1.0)


def plan_retry(outcome: int | BaseException, attempt: int, retry_after: float | None,
               policy: RetryPolicy, *, jitter: float = 1.0) -> tuple[Action, float]:
    """Decide what follows attempt number ``attempt`` (1-based) and after what delay."""
    if not isinstance(outcome, BaseException) and 200 <= outcome <= 299:
        return Action.DONE, 0.0
    if not is_retriable(outcome) or attempt >= policy.max_attempts:
        return Action.DEAD_LETTER, 0.0
    if retry_after is not None:
        return Action.RETRY, min(max(retry_after, 0.0), policy.retry_after_max_s)
    return Action.RETRY, backoff(attempt, policy, jitter)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    # ASCII digits only: str.isdigit() also accepts "²" and "٣", which float() refuses or
    # reads as another number. A huge value is capped here (and again by the policy).
    if text.isascii() and text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
