"""The ``alerts:`` section of the gateway config (``gateway.config.GatewaySettings.alerts``).

This module imports nothing from ``gateway.config`` (which imports it), so it has its own
strict base; a ``ValueError`` raised here comes out of the config loader as
``file:line: alerts.<field>: message``.

Durations are written as a number of seconds or as text with a unit (``90s``, ``5m``,
``2h``, ``1d``), so ``for: 0s`` and ``for: 0`` mean the same. Each rule kind has its own
threshold field, named for what it measures, so a rule reads without the docs::

    - {name: lab-silent, kind: silent_sender, sender: SUNLAB, minutes: 30}
    - {name: backlog, kind: spool_depth, above: 1000, for: 2m}
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from ``30``, ``30.5``, ``"90s"``, ``"5m"``, ``"2h"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 5m, 2h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
        if not match:
            raise ValueError(f"{value!r} is not a duration: write 30s, 5m, 2h or 1d")
        seconds = float(match[1]) * _UNITS[match[2] or "s"]
    else:
        raise ValueError("a duration is a number of seconds or text like 30s, 5m, 2h")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
Severity = Literal["info", "warning", "critical"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Rule(_Strict):
    """What every rule has: a name, a severity and how long it must hold before firing."""

    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")
    severity: Severity = "warning"
    for_s: Duration = Field(default=0.0, alias="for")
    sender: str | None = Field(default=None, min_length=1)  # "APP|FAC", or "APP"


class SilentSenderRule(_Rule):
    """No message (accepted or refused) from ``sender`` — or from anyone — for ``minutes``."""

    kind: Literal["silent_sender"]
    minutes: float = Field(gt=0)


class SpoolDepthRule(_Rule):
    """More than ``above`` rows waiting to be published."""

    kind: Literal["spool_depth"]
    above: int = Field(ge=0)


class PublishLagRule(_Rule):
    """The oldest row waiting to be published is older than ``seconds``."""

    kind: Literal["publish_lag"]
    seconds: float = Field(ge=0)


class ErrorRatioRule(_Rule):
    """Refused / (accepted + refused) above ``above`` over ``window``, once at least
    ``min_messages`` arrived in it (a single bad message at night is not 100 %)."""

    kind: Literal["error_ratio"]
    above: float = Field(ge=0, le=1)
    window: Duration = 900.0
    min_messages: int = Field(default=20, ge=1)

    @field_validator("window")
    @classmethod
    def _window_positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("window must be longer than 0 s")
        return value


class DlqGrowthRule(_Rule):
    """The bridge's dead-letter topic grew by more than ``above`` events over ``window``."""

    kind: Literal["dlq_growth"]
    above: int = Field(default=0, ge=0)
    window: Duration = 600.0

    @field_validator("window")
    @classmethod
    def _window_positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("window must be longer than 0 s")
        return value


Rule = Annotated[SilentSenderRule | SpoolDepthRule | PublishLagRule | ErrorRatioRule
                 | DlqGrowthRule, Field(discriminator="kind")]


class WebhookSettings(_Strict):
    """Where state changes are POSTed as JSON, and how hard to try."""

    url: str
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # ${env:...} for secrets
    timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=3, ge=0, le=20)  # after the first attempt
    backoff_s: float = Field(default=1.0, ge=0)  # doubled each retry
    backoff_max_s: float = Field(default=30.0, ge=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, not {value!r}")
        return value


class AlertSettings(_Strict):
    """Alert rules and where they are sent."""

    interval_s: float = Field(default=10.0, gt=0, le=3600)  # how often rules are evaluated
    rules: list[Rule] = Field(default_factory=list)
    webhook: WebhookSettings | None = None

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for rule in value:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}: give each its own name")
            seen.add(rule.name)
        return value
