"""Sending an alert's state change to a webhook: JSON, with retries and backoff.

The body names the rule, its kind, severity, state, value and threshold, when the state
began and which gateway sent it — never a message, a patient or a search value, so a
chat room or a pager service may receive it. A timeout, a connection error, a 5xx or a
429 is retried (``retries`` times, the wait doubling from ``backoff_s``); any other 4xx
is the receiver refusing this body and is not retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from gateway.alerts.settings import WebhookSettings
from gateway.errors import GatewayError

log = logging.getLogger("hl7gw.alerts")


class WebhookError(GatewayError):
    """The webhook did not take an alert (after the retries configured)."""


class _Retryable(WebhookError):
    """A failure worth another attempt (timeout, connection, 5xx, 429)."""


@dataclass(frozen=True)
class Delivery:
    """How one send went: delivered or not, after how many attempts, and why not."""

    ok: bool
    attempts: int
    error: str | None = None


class Webhook:
    """POSTs alert payloads to ``settings.url``; one HTTP client per send."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings

    async def send(self, payload: dict[str, Any]) -> Delivery:
        """Deliver ``payload``, retrying as configured; never raises for HTTP trouble."""
        cfg = self.settings
        headers = {name: value.get_secret_value() for name, value in cfg.headers.items()}
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(cfg.retries + 1),
            wait=wait_exponential(multiplier=cfg.backoff_s, max=cfg.backoff_max_s),
            retry=retry_if_exception_type(_Retryable), reraise=False)
        try:
            async with httpx.AsyncClient(timeout=cfg.timeout_s) as client:
                async for attempt in retrying:
                    with attempt:
                        attempts += 1
                        await self._post(client, payload, headers)
        except RetryError as exc:
            error = str(exc.last_attempt.exception())
            log.warning("alert webhook failed", extra={"rule": payload.get("name"),
                                                      "attempts": attempts, "error": error})
            return Delivery(False, attempts, error)
        except WebhookError as exc:
            log.warning("alert webhook refused", extra={"rule": payload.get("name"),
                                                       "attempts": attempts, "error": str(exc)})
            return Delivery(False, attempts, str(exc))
        log.info("alert webhook sent", extra={"rule": payload.get("name"),
                                              "state": payload.get("state"),
                                              "attempts": attempts})
        return Delivery(True, attempts)

    async def _post(self, client: httpx.AsyncClient, payload: dict[str, Any],
                    headers: dict[str, str]) -> None:
        try:
            response = await client.post(self.settings.url, json=payload, headers=headers)
        except httpx.TimeoutException:
            raise _Retryable(f"no answer within {self.settings.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise _Retryable(f"cannot reach the webhook ({type(exc).__name__})") from None
        status = response.status_code
        if status >= 500 or status == 429:
            raise _Retryable(f"the webhook answered HTTP {status}")
        if status >= 400:
            raise WebhookError(f"the webhook refused the alert with HTTP {status}: check "
                               "alerts.webhook.url and its headers")
