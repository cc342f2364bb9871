"""Whether Kafka answers, said truthfully: readiness detail, ``hl7gw_kafka_up``, a warning.

aiokafka retries a record for an unreachable leader without a deadline and says nothing,
so "no error so far" is not "connected": with the broker stopped, a publish simply never
returns. The state here therefore comes from two sources: the publisher reports each
acknowledged batch (up) and each failed one (down), and a probe asks the cluster for its
metadata every ``probe_interval_s`` with a deadline (up or down either way).

While Kafka is down and rows wait, a warning is logged at once and then every
``warn_interval_s`` with the number of waiting rows and the age of the oldest one (ids
and counts only, no PHI); ``hl7gw_oldest_pending_age_seconds`` carries the same age.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from connectors.errors import ConnectorError
from connectors.kafka import EventProducer
from gateway.errors import SpoolError
from gateway.metrics import GatewayMetrics
from gateway.spool import Spool

log = logging.getLogger("hl7gw.kafka")

State = Literal["connecting", "connected", "unreachable"]


class KafkaWatch:
    """The broker's state as last seen, kept current by a probe and by the publisher."""

    def __init__(self, producer: EventProducer, spool: Spool, metrics: GatewayMetrics, *,
                 probe_interval_s: float = 5.0, probe_timeout_s: float = 5.0,
                 warn_interval_s: float = 30.0) -> None:
        self.producer = producer
        self.spool = spool
        self.metrics = metrics
        self.probe_interval_s = probe_interval_s
        self.probe_timeout_s = probe_timeout_s
        self.warn_interval_s = warn_interval_s
        self.state: State = "connecting"
        self.error: str | None = None  # the error class of the last failure, while down
        self._since = time.monotonic()
        self._warned_at: float | None = None
        metrics.kafka_up.set(0)

    @property
    def up(self) -> bool:
        """True while the broker answers."""
        return self.state == "connected"

    def seconds_in_state(self) -> float:
        """How long the current state has lasted."""
        return time.monotonic() - self._since

    def succeeded(self) -> None:
        """Kafka answered (an ack, or metadata)."""
        if self.state != "connected":
            if self.state == "unreachable":
                log.info("kafka reachable again",
                         extra={"down_for_s": round(self.seconds_in_state(), 1)})
            self._change("connected")
        self.error = None

    def failed(self, error_class: str) -> None:
        """Kafka did not answer (a publish or probe failed with ``error_class``)."""
        self.error = error_class
        if self.state != "unreachable":
            self._change("unreachable")
            self._warned_at = None  # warn at once on the next check

    async def check(self) -> None:
        """Probe once, refresh the oldest-row age, and warn if Kafka is down.

        The first warning comes when Kafka is found down; it repeats every
        ``warn_interval_s`` while rows wait. Before the producer has started there is
        nothing to probe: the state stays as the start attempts reported it.
        """
        if self.producer.started:
            try:
                await self.producer.ping(self.probe_timeout_s)
            except ConnectorError as exc:
                self.failed(getattr(exc, "cause", None) or type(exc).__name__)
            else:
                self.succeeded()
        age = await self.oldest_pending_age()
        self.metrics.oldest_pending_age.set(age or 0.0)
        if self.state != "unreachable":
            return
        now = time.monotonic()
        if self._warned_at is None or (age is not None and
                                       now - self._warned_at >= self.warn_interval_s):
            self._warned_at = now
            log.warning("kafka unreachable; accepted messages wait in the spool",
                        extra={"error_class": self.error,
                               "down_for_s": round(self.seconds_in_state(), 1),
                               "pending": self.spool.pending_rows,
                               "oldest_pending_age_s": None if age is None else round(age, 1)})

    async def run(self) -> None:
        """Check every ``probe_interval_s`` until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self.probe_interval_s)

    async def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest row still waiting was received; None when none waits."""
        try:
            rows = await self.spool.pending(limit=1)
        except SpoolError:
            return None
        return max(time.time() - rows[0].received_at, 0.0) if rows else None

    def describe(self) -> dict[str, object]:
        """The readiness detail: state, for how long, and the last error while down."""
        detail: dict[str, object] = {"state": self.state,
                                     "for_s": round(self.seconds_in_state(), 1)}
        if self.error is not None:
            detail["error"] = self.error
        return detail

    def _change(self, state: State) -> None:
        self.state = state
        self._since = time.monotonic()
        self.metrics.kafka_up.set(1 if state == "connected" else 0)
