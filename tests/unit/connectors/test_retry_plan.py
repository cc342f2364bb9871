"""The bridge's retry policy as a table: outcome x attempt -> (action, delay)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from connectors.bridge.retry import Action, RetryPolicy, backoff, parse_retry_after, plan_retry

POLICY = RetryPolicy(max_attempts=5, backoff_initial_s=1.0, backoff_max_s=8.0,
                     retry_after_max_s=60.0)
CONNECT = httpx.ConnectError("refused")
TIMEOUT = httpx.ReadTimeout("slow")

# (outcome, attempt, retry_after, jitter, expected action, expected delay)
TABLE: list[tuple[int | BaseException, int, float | None, float, Action, float]] = [
    (200, 1, None, 1.0, Action.DONE, 0.0),
    (202, 3, None, 1.0, Action.DONE, 0.0),
    (204, 5, None, 1.0, Action.DONE, 0.0),
    (500, 1, None, 1.0, Action.RETRY, 1.0),
    (502, 2, None, 1.0, Action.RETRY, 2.0),
    (503, 3, None, 1.0, Action.RETRY, 4.0),
    (504, 4, None, 1.0, Action.RETRY, 8.0),
    (503, 5, None, 1.0, Action.DEAD_LETTER, 0.0),
    (503, 1, None, 0.0, Action.RETRY, 0.5),  # equal jitter: never below half the ceiling
    (503, 4, None, 0.0, Action.RETRY, 4.0),
    (503, 1, 7.0, 1.0, Action.RETRY, 7.0),  # Retry-After wins over backoff
    (429, 1, 3600.0, 1.0, Action.RETRY, 60.0),  # ... capped
    (429, 2, None, 1.0, Action.RETRY, 2.0),
    (404, 1, None, 1.0, Action.RETRY, 1.0),
    (408, 1, None, 1.0, Action.RETRY, 1.0),
    (409, 1, 1.0, 1.0, Action.RETRY, 1.0),
    (400, 1, None, 1.0, Action.DEAD_LETTER, 0.0),
    (401, 1, None, 1.0, Action.DEAD_LETTER, 0.0),
    (403, 1, None, 1.0, Action.DEAD_LETTER, 0.0),
    (413, 1, None, 1.0, Action.DEAD_LETTER, 0.0),
    (422, 1, None, 1.0, Action.DEAD_LETTER, 0.0),
    (301, 1, None, 1.0, Action.DEAD_LETTER, 0.0),
    (CONNECT, 1, None, 1.0, Action.RETRY, 1.0),
    (TIMEOUT, 2, None, 1.0, Action.RETRY, 2.0),
    (CONNECT, 5, None, 1.0, Action.DEAD_LETTER, 0.0),
    (ValueError("bug"), 1, None, 1.0, Action.DEAD_LETTER, 0.0),
    (httpx.DecodingError("bad gzip"), 1, None, 1.0, Action.DEAD_LETTER, 0.0),
]


@pytest.mark.parametrize(("outcome", "attempt", "retry_after", "jitter", "action", "delay"),
                         TABLE)
def test_plan_retry(outcome: int | BaseException, attempt: int, retry_after: float | None,
                    jitter: float, action: Action, delay: float) -> None:
    assert plan_retry(outcome, attempt, retry_after, POLICY, jitter=jitter) == (action, delay)


def test_backoff_is_bounded_for_any_attempt_and_jitter() -> None:
    for attempt in range(1, 60):
        for jitter in (-1.0, 0.0, 0.3, 1.0, 2.0):
            assert 0.0 <= backoff(attempt, POLICY, jitter) <= POLICY.backoff_max_s


def test_single_attempt_policy_never_retries() -> None:
    assert plan_retry(503, 1, None, RetryPolicy(max_attempts=1)) == (Action.DEAD_LETTER, 0.0)


NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("header", "seconds"), [
    (None, None),
    ("", None),
    ("0", 0.0),
    ("120", 120.0),
    (" 5 ", 5.0),
    ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
    ("Wed, 01 May 2024 11:00:00 GMT", 0.0),  # in the past: now
    ("soon", None),
    ("-5", None),
    ("\u00b2", None),  # isdigit() is true for "²", and float("²") raised ValueError
    ("\u0663", None),  # an Arabic-Indic 3 is not a delta-seconds either
    ("1.5", None),  # delta-seconds are whole
    ("9" * 400, 86_400.0 * 365),  # capped, not inf
    ("Fri, 31 Dec 9999 23:59:59 -2359", 8_000 * 365.25 * 86_400.0),
])
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    parsed = parse_retry_after(header, NOW)
    if seconds is not None and seconds > 1e9:
        assert parsed is not None and parsed > 1e9  # far future: a large finite delay
    else:
        assert parsed == seconds
