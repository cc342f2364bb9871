"""One rule's state over time: ok -> pending -> firing -> resolved, with its ``for`` delay.

A breach must hold ``for`` seconds before the rule fires, so one slow minute does not page
anyone; a rule that stops breaching while pending goes back to ok silently. Only the two
changes a person acts on are sent: *firing* and *resolved* (after firing). A measurement
that cannot be taken (Kafka silent for ``dlq_growth``, the spool unreadable) leaves the
state as it was: an unknown value neither fires nor resolves an alert.

The clock is passed in (``now``), so the state machine is tested without waiting.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from gateway.alerts.settings import (
    DlqGrowthRule,
    ErrorRatioRule,
    PublishLagRule,
    Rule,
    SilentSenderRule,
    SpoolDepthRule,
)

State = Literal["ok", "pending", "firing", "resolved"]


@dataclass(frozen=True)
class Transition:
    """A change worth sending: the rule started firing, or stopped."""

    rule: str
    state: Literal["firing", "resolved"]
    value: float | None
    at: float


@dataclass
class RuleState:
    """What the engine remembers of one rule between evaluations."""

    rule: Rule
    state: State = "ok"
    value: float | None = None  # the last measured value (None: could not be measured)
    breach_since: float | None = None  # when the current breach began
    since: float | None = None  # when the rule entered its current state
    evaluated_at: float | None = None
    last_sent: float | None = None  # the last webhook delivery that succeeded
    delivery: str = "none"  # none / sending / sent / failed: ... / no webhook
    history: deque[tuple[float, float]] = field(default_factory=deque)  # dlq_growth's

    def observe(self, value: float | None, breached: bool | None, now: float
                ) -> Transition | None:
        """Take one measurement; the Transition to send, if the state changed so."""
        self.evaluated_at = now
        self.value = value
        if breached is None:
            return None  # unknown: keep whatever state we were in
        if not breached:
            self.breach_since = None
            if self.state == "firing":
                self.state, self.since = "resolved", now
                return Transition(self.rule.name, "resolved", value, now)
            if self.state == "pending":
                self.state, self.since = "ok", now
            return None
        if self.breach_since is None:
            self.breach_since = now
        if self.state == "firing":
            return None
        if now - self.breach_since >= self.rule.for_s:
            self.state, self.since = "firing", now
            return Transition(self.rule.name, "firing", value, now)
        if self.state != "pending":
            self.state, self.since = "pending", now
        return None


def threshold_of(rule: Rule) -> float:
    """The number a rule's value is compared with (in the value's own unit)."""
    if isinstance(rule, SilentSenderRule):
        return rule.minutes * 60.0
    if isinstance(rule, PublishLagRule):
        return rule.seconds
    if isinstance(rule, SpoolDepthRule | ErrorRatioRule | DlqGrowthRule):
        return float(rule.above)
    raise TypeError(f"unknown rule kind {type(rule).__name__}")


def unit_of(rule: Rule) -> str:
    """What a rule's value counts, for pages and the webhook."""
    return {"silent_sender": "seconds since the last message", "spool_depth": "rows pending",
            "publish_lag": "seconds", "error_ratio": "refused / all",
            "dlq_growth": "dead letters in the window"}[rule.kind]


def breached(rule: Rule, value: float | None) -> bool | None:
    """Whether ``value`` breaks ``rule`` (strictly above its threshold); None if unknown."""
    if value is None:
        return None
    return value > threshold_of(rule)


def growth(history: deque[tuple[float, float]], now: float, total: float | None,
           window: float) -> float | None:
    """How much ``total`` (the DLQ's summed end offsets) grew over the last ``window``.

    ``history`` keeps (time, total) samples; the oldest one inside the window is the base,
    so until a window has passed the growth counts from the first sample.
    """
    if total is None:
        return None
    history.append((now, total))
    while len(history) > 1 and history[1][0] <= now - window:
        history.popleft()
    base = history[0][1]
    return max(total - base, 0.0)
