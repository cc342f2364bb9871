"""Delivery to one destination: its own connection, its queue in order, ACK by ACK.

One :class:`DestinationSender` per configured destination sends the oldest queued message,
waits for the ACK whose MSA-2 is that message's MSH-10, and only then takes the next one,
so a destination receives its messages in queue order. What each answer means:

- AA / CA: credited, the row is ``sent``;
- AE / CE, no answer within ``ack_timeout_s``, a dropped or refused connection: sent again
  (the same bytes, the same MSH-10) after a backoff doubling from ``backoff_initial_s``
  to ``backoff_max_s``; after ``max_attempts`` the row is ``failed``;
- AR / CR: ``failed`` at once (the destination refuses this message for good);
- an ACK frame whose MSA-2 is another control id (a late ACK of an earlier send, or a
  foreign one): logged and ignored, not credited; the wait goes on.

Attempts are counted in the spool, so a restart does not reset them; a message is never
taken off the queue before its ACK is recorded, so a crash mid-delivery resends it with
the same MSH-10 (the destination can drop the repeat). A failed message is moved aside,
visible in the console, and replayable (it then goes to the back of the queue).

Credited ACKs are recorded in group commits (up to :data:`BATCH` rows, and at least when
the queue runs dry or a retry comes): one fsync per message capped a destination at
~150 msg/s here. A crash can then resend up to a batch of messages the destination had
ACKed, each with its MSH-10, which is the at-least-once the destination already handles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.errors import SpoolError
from gateway.metrics import GatewayMetrics
from gateway.mllp.client import MllpClient, MllpClientError
from gateway.outbound.settings import DestinationSettings
from gateway.spool import Spool
from gateway.spool.outbound import OutboundRow, OutboundStatus

log = logging.getLogger("hl7gw.outbound")

IDLE_POLL_S = 1.0  # an idle sender looks at its queue this often (besides being woken)
BATCH = 64  # rows read from the queue at a time, and most ACKs recorded per commit
ACCEPTED = frozenset({"AA", "CA"})
REFUSED = frozenset({"AR", "CR"})


@dataclass(frozen=True)
class Answer:
    """What one send came to: an ACK code (MSA-1) with the ACK, or a transport failure."""

    code: str  # "AA", "AE", ... or "timeout" / "connection"
    ack: bytes | None = None
    detail: str = ""


def parse_msa(ack: bytes) -> tuple[str, str]:
    """(MSA-1, MSA-2) of an ACK frame; ("", "") when it has no MSA segment."""
    text = ack.decode("utf-8", "replace")
    for segment in text.replace("\n", "\r").split("\r"):
        if segment.startswith("MSA") and len(segment) > 4:
            parts = segment.split(segment[3])
            code = parts[1].strip() if len(parts) > 1 else ""
            control = parts[2].split("^")[0].strip() if len(parts) > 2 else ""
            return code, control
    return "", ""


class DestinationSender:
    """Sends one destination's queue in order; ``run()`` until cancelled."""

    def __init__(self, settings: DestinationSettings, spool: Spool, metrics: GatewayMetrics,
                 *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.settings = settings
        self.name = settings.name
        self._spool = spool
        self._metrics = metrics
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._client: MllpClient | None = None
        self.state = "idle"  # idle, sending, waiting (backoff), down (cannot connect)
        self.last_ack_at: float | None = None
        self.last_ack_code: str | None = None
        self.last_error: str | None = None
        self._credited: list[tuple[int, int, str, bytes]] = []  # ACKed, not yet recorded
        for code in ("AA", "AE", "AR"):
            metrics.outbound_acks.labels(self.name, code)
        metrics.outbound_connected.labels(self.name).set(0)

    def wake(self) -> None:
        """Something was queued: look at the queue now."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver queued messages until cancelled (the row in flight stays queued)."""
        try:
            while True:
                try:
                    rows = await self._spool.queued_outbound(self.name, BATCH)
                except SpoolError as exc:
                    log.warning("outbound queue unreadable", extra={
                        "destination": self.name, "error_class": type(exc).__name__})
                    await self._idle()
                    continue
                if not rows:
                    self.state = "idle"
                    await self._idle()
                    continue
                for row in rows:
                    await self._deliver(row)
                await self._record_credited()
        finally:
            if self._credited:  # stopping: one try; what is not recorded is resent
                with contextlib.suppress(Exception):
                    await self._spool.mark_outbound_sent(self._credited)
            await self._disconnect()

    async def _idle(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)

    async def _deliver(self, row: OutboundRow) -> None:
        attempts = row.attempts
        while True:
            attempts += 1
            self.state = "sending"
            answer = await self._attempt(row)
            if answer.code in ACCEPTED:
                assert answer.ack is not None
                self.last_ack_at, self.last_ack_code, self.last_error = (
                    time.time(), answer.code, None)
                self._credited.append((row.id, attempts, answer.code, answer.ack))
                if len(self._credited) >= BATCH:
                    await self._record_credited()
                self._metrics.outbound_sent.labels(self.name).inc()
                log.info("outbound message acknowledged", extra={
                    "destination": self.name, "outbound_id": row.id,
                    "control_id": row.control_id, "ack_code": answer.code,
                    "attempts": attempts})
                return
            if answer.code in REFUSED or attempts >= self.settings.max_attempts:
                why = (f"refused with {answer.code}" if answer.code in REFUSED
                       else f"gave up after {attempts} attempts (last: {answer.code})")
                await self._settle(row, "failed", attempts, answer, f"{why}; {answer.detail}")
                self._metrics.outbound_failed.labels(self.name).inc()
                log.warning("outbound message failed", extra={
                    "destination": self.name, "outbound_id": row.id,
                    "control_id": row.control_id, "ack_code": answer.code,
                    "attempts": attempts})
                return
            await self._settle(row, "queued", attempts, answer, answer.detail or answer.code)
            self._metrics.outbound_retries.labels(self.name, answer.code).inc()
            delay = min(self.settings.backoff_max_s,
                        self.settings.backoff_initial_s * 2.0 ** (attempts - 1))
            log.info("outbound message will be sent again", extra={
                "destination": self.name, "outbound_id": row.id, "reason": answer.code,
                "attempts": attempts, "retry_in_s": round(delay, 2)})
            self.state = "waiting"
            await self._sleep(delay)

    async def _record_credited(self) -> None:
        """Commit the credited rows not yet recorded (one transaction for all)."""
        if self._credited:
            credited = self._credited
            await self._until_recorded(lambda: self._spool.mark_outbound_sent(credited))
            self._credited = []

    async def _settle(self, row: OutboundRow, status: OutboundStatus, attempts: int,
                      answer: Answer,
                      error: str | None = None) -> None:
        """Record the outcome; a spool that fails is retried (the row must not be lost)."""
        await self._record_credited()  # earlier rows' state before this one's
        if answer.ack is not None:
            self.last_ack_at, self.last_ack_code = time.time(), answer.code
        self.last_error = error
        await self._until_recorded(lambda: self._spool.settle_outbound(
            row.id, status=status, attempts=attempts,
            ack_code=answer.code if answer.ack else None, ack=answer.ack, error=error))

    async def _until_recorded(self, write: Callable[[], Awaitable[None]]) -> None:
        """Run a spool write until it succeeds, backing off while the spool fails (a
        destination's state must not be lost; sending waits meanwhile)."""
        delay = 0.5
        while True:
            try:
                await write()
                return
            except SpoolError as exc:
                log.warning("outbound state not recorded; retrying", extra={
                    "destination": self.name, "error_class": type(exc).__name__})
                await self._sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _attempt(self, row: OutboundRow) -> Answer:
        """Send ``row`` once and wait for its ACK (others are ignored)."""
        s = self.settings
        try:
            client = await self._connect()
        except MllpClientError as exc:
            self.state = "down"
            return Answer("connection", detail=str(exc))
        try:
            await client.write(row.message)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + s.ack_timeout_s
            while True:
                frame = await client.read_ack(max(deadline - loop.time(), 0.0))
                code, control_id = parse_msa(frame)
                self._metrics.outbound_acks.labels(self.name, code or "none").inc()
                if control_id == row.control_id and code:
                    return Answer(code, frame)
                self._metrics.outbound_ignored_acks.labels(self.name).inc()
                log.warning("ACK for another message ignored", extra={
                    "destination": self.name, "outbound_id": row.id,
                    "expected_control_id": row.control_id, "ack_control_id": control_id,
                    "ack_code": code})
        except MllpClientError as exc:
            # No ACK in time, or the connection broke: start the next attempt on a new
            # connection, so a late ACK of this send cannot be taken for the next one's.
            await self._disconnect()
            timed_out = "no ACK within" in str(exc)
            return Answer("timeout" if timed_out else "connection", detail=str(exc))

    async def _connect(self) -> MllpClient:
        if self._client is not None and self._client.connected:
            return self._client
        s = self.settings
        client = MllpClient(s.host, s.port, timeout=s.connect_timeout_s,
                            tls=s.tls.context() if s.tls is not None else None)
        await client.connect()
        self._client = client
        self._metrics.outbound_connected.labels(self.name).set(1)
        log.info("connected to destination", extra={"destination": self.name})
        return client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        self._metrics.outbound_connected.labels(self.name).set(0)
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.abort(), 2.0)

    @property
    def connected(self) -> bool:
        """True while the connection to the destination is open."""
        return self._client is not None and self._client.connected
