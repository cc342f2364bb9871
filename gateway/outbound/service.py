"""The return path in the gateway's loop: the outbound consumer and one sender per
destination."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from connectors.settings import KafkaSettings
from gateway.errors import GatewayError, SpoolError
from gateway.metrics import GatewayMetrics
from gateway.outbound.consumer import OutboundConsumer
from gateway.outbound.render import Renderer
from gateway.outbound.sender import DestinationSender
from gateway.outbound.settings import OutboundSettings
from gateway.spool import Spool
from mappers.errors import Hl7gwError

log = logging.getLogger("hl7gw.outbound")

GAUGE_REFRESH_S = 2.0


class ReplayError(GatewayError):
    """An outbound replay could not be done (unknown row, or it still cannot be rendered)."""


class OutboundService:
    """The consumer and one sender per destination; ``start()``/``stop()``."""

    def __init__(self, settings: OutboundSettings, kafka: KafkaSettings, spool: Spool,
                 metrics: GatewayMetrics) -> None:
        self.settings = settings
        self._spool = spool
        self._metrics = metrics
        # Profiles load here, at construction: a bad file stops the start (ConfigError).
        self.renderers = {d.name: Renderer.for_destination(d) for d in settings.destinations}
        self.senders = {d.name: DestinationSender(d, spool, metrics)
                        for d in settings.destinations}
        self.consumer = OutboundConsumer(settings, kafka, spool, metrics,
                                         list(self.renderers.values()), self._wake)
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        """Start consuming and sending (the spool must be started)."""
        self._tasks.append(asyncio.create_task(self.consumer.run(), name="outbound-consumer"))
        for name, sender in self.senders.items():
            self._tasks.append(asyncio.create_task(sender.run(), name=f"outbound-{name}"))
        self._tasks.append(asyncio.create_task(self._gauges(), name="outbound-gauges"))

    async def stop(self) -> None:
        """Stop at once: a message in flight stays queued and is resent after a restart
        with the same MSH-10; consumed records not yet queued are consumed again."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _wake(self, destinations: set[str]) -> None:
        for name in destinations:
            sender = self.senders.get(name)
            if sender is not None:
                sender.wake()

    async def _gauges(self) -> None:
        while True:
            with contextlib.suppress(SpoolError):
                await self.refresh_gauges()
            await asyncio.sleep(GAUGE_REFRESH_S)

    async def refresh_gauges(self) -> None:
        """Queued count and oldest age per destination, from the spool."""
        depths = await self._spool.outbound_depths()
        now = time.time()
        for name in self.senders:
            depth = depths.get(name)
            queued = depth.queued if depth else 0
            oldest = depth.oldest_queued_at if depth else None
            self._metrics.outbound_queued.labels(name).set(queued)
            self._metrics.outbound_oldest_age.labels(name).set(
                max(now - oldest, 0.0) if oldest is not None else 0.0)

    async def status(self) -> dict[str, Any]:
        """Per destination: connection, queue, last ACK (console, /readyz details)."""
        depths = await self._spool.outbound_depths()
        now = time.time()
        out: dict[str, Any] = {"consumer": self.consumer.state, "destinations": {}}
        for name, sender in self.senders.items():
            depth = depths.get(name)
            oldest = depth.oldest_queued_at if depth else None
            out["destinations"][name] = {
                "address": f"{sender.settings.host}:{sender.settings.port}",
                "state": sender.state, "connected": sender.connected,
                "queued": depth.queued if depth else 0,
                "oldest_queued_age_s": round(now - oldest, 1) if oldest else None,
                "failed": depth.failed if depth else 0, "sent": depth.sent if depth else 0,
                "last_ack_code": sender.last_ack_code, "last_ack_at": sender.last_ack_at,
                "last_error": sender.last_error}
        return out

    async def replay(self, ids: list[int], *, rerender: bool = True) -> list[int]:
        """Queue failed or sent rows again (at the back of their destination's queue).

        With ``rerender`` the message is rendered again from the stored FHIR result with the
        destination's current profile (same MSH-10), so a fixed profile takes effect; a row
        of an unknown destination, or one that still cannot be rendered, raises ReplayError.
        """
        messages: dict[int, bytes] = {}
        destinations: set[str] = set()
        for row_id in ids:
            row = await self._spool.get_outbound(row_id)
            if row is None:
                raise ReplayError(f"no outbound message {row_id}")
            renderer = self.renderers.get(row.destination)
            if renderer is None:
                raise ReplayError(f"outbound message {row_id} is for {row.destination!r}, "
                                  "which is not configured any more")
            destinations.add(row.destination)
            if rerender or not row.message:
                resource = await self._spool.outbound_resource(row_id)
                try:
                    messages[row_id] = renderer.rerender(row.event_id, resource or b"{}",
                                                         row.message_type)
                except (Hl7gwError, ValueError) as exc:
                    raise ReplayError(f"outbound message {row_id} still cannot be rendered: "
                                      f"{exc}") from exc
        new_ids = await self._spool.requeue_outbound(ids, messages)
        self._wake(destinations)
        log.info("outbound messages replayed", extra={"rows": len(new_ids)})
        return new_ids
