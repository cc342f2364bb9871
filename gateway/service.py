"""The running gateway: spool, MLLP listeners, publisher and HTTP app in one event loop.

Readiness means "a message sent now would be ACKed durably": the spool is open and the
listeners are bound. Kafka being down does not make the gateway unready — intake keeps
accepting into the spool (store-and-forward) — it is reported as a detail instead
(``kafka``: connecting / connected / unreachable, as the :class:`KafkaWatch` last saw it,
with the age of the oldest waiting row). So is the state of the sender profiles: a
rejected profile edit leaves the last good set serving, so it shows as
``profiles.last_error`` without making the gateway unready.

Stopping (SIGTERM) has one deadline, ``drain_timeout_s``, for everything: in-flight
frames, a last publish if Kafka answers, flushing the producer and the mapping worker's
batch. What is not published by then stays in the spool and goes out after the restart;
a broker that is down or a 12,000-line report in the worker cannot stretch the stop.

Profiles (``profiles.dir``) load before anything is bound: a bad file stops the start.
While running they reload on SIGHUP (when the service runs in the main thread's loop, the
only place a signal handler can go) and when the folder changes (``watch_interval_s``);
a reload swaps one object, so MLLP connections stay open across it. SIGHUP also reloads
the keyring when the spool is encrypted (after ``hl7gw keys rotate``: new records are
sealed under the new current key without a restart); a keyring that lacks a key in use,
or cannot be loaded, is refused and the keys in use stay (:meth:`reload_keys`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import uvicorn

from connectors import tracing
from connectors.kafka import EventProducer
from gateway.alerts.engine import build_engine
from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.errors import EncryptionError, ListenError, SpoolError
from gateway.intake import Intake, IntakeResult
from gateway.kafka_watch import KafkaWatch
from gateway.mapping import MappingPool
from gateway.metrics import GatewayMetrics, sender_labels
from gateway.mllp.server import MllpListener
from gateway.mllp.settings import server_context
from gateway.outbound.service import OutboundService
from gateway.profiles import ProfileStore
from gateway.publisher import Publisher
from gateway.spool import Spool
from gateway.traces import traced_frames
from hl7gw.http_server import QuietServer, stop_server
from mappers._accel import status as mapper_status

if TYPE_CHECKING:
    from gateway.keys.keyring import Keyring

log = logging.getLogger("hl7gw.service")

STOP_RESERVE_S = 1.5  # of the drain deadline, for HTTP, the producer and the mapping worker


def _keyring(settings: GatewaySettings) -> Keyring | None:
    """The spool's keys (EncryptionError, saying what to do, if they cannot be loaded:
    nothing starts, nothing is ACKed that could not be stored as configured)."""
    from gateway.keys.providers import configured_keyring

    if settings.encryption is None:
        logging.getLogger("hl7gw.spool").warning(
            "the spool and journal are not encrypted at rest; add an encryption: section "
            "(docs/encryption.md)")
    return configured_keyring(settings.encryption)


class GatewayService:
    """Start with ``start()``, stop with ``stop()``; ``async with`` does both."""

    def __init__(self, settings: GatewaySettings, *, http: bool = True,
                 mapping: MappingPool | None = None) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.registry = self.metrics.registry
        self.spool = Spool(settings.spool.path, max_batch=settings.spool.max_batch,
                           journal_dir=settings.spool.journal_path,
                           segment_bytes=settings.spool.journal_segment_mb << 20,
                           keyring=_keyring(settings))
        self.producer = EventProducer(settings.kafka)
        # Scale-out: `hl7gw mapper` maps elsewhere; no mapping worker is started here.
        raw_topic = settings.scale_out.raw_topic if settings.scale_out is not None else None
        self.mapping = mapping or MappingPool(0 if raw_topic else settings.mapping_workers)
        self.profiles = ProfileStore(settings.profiles, self.metrics)
        self.kafka_watch = KafkaWatch(self.producer, self.spool, self.metrics)
        self.publisher = Publisher(self.spool, self.producer, self.metrics,
                                   kafka=settings.kafka, source=settings.source,
                                   mapping=self.mapping, profiles=self.profiles,
                                   watch=self.kafka_watch, raw_topic=raw_topic)
        # The return path (results to the EHR): destination profiles load here, so a bad
        # one stops the start like a bad config file.
        self.outbound = (OutboundService(settings.outbound, settings.kafka, self.spool,
                                         self.metrics)
                         if settings.outbound is not None else None)
        # Alert rules (docs/alerts.md): evaluated in a task, shown on the console.
        self.alerts = build_engine(settings, self.spool, self.registry)
        self.listeners: list[MllpListener] = []
        self.intakes: dict[str, Intake] = {}  # listener name -> its intake (console reprocess)
        self._tasks: list[asyncio.Task[Any]] = []
        self._http_enabled = http
        self._http: uvicorn.Server | None = None
        self._producer_start: asyncio.Future[None] | None = None
        self.http_port: int | None = None
        self.mapper_build = ""  # "compiled (mypyc)" or "pure Python (why)", set by start()
        self._sighup = False  # a SIGHUP handler is installed (removed by stop())
        self._reloads: set[asyncio.Task[Any]] = set()  # SIGHUP reloads in flight

    async def __aenter__(self) -> GatewayService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the spool, bind listeners and HTTP, and start publishing."""
        self._note_mapper_build()
        self.profiles.load()  # ProfileError (file:line: field): nothing starts
        await self.spool.start()
        self._note_keyring()
        self.spool.on_indexed(self.publisher.wake)
        self.spool.search.start()  # the search index follows the spool in the background
        self.mapping.start()
        for ls in self.settings.listeners:
            intake = Intake(ls, self.spool, self.metrics,
                            default_timezone=self.settings.default_timezone,
                            max_pending=self.settings.spool.max_pending,
                            profiles=self.profiles)
            listener = MllpListener(ls, self._handler(intake.handle, ls.name), self.metrics,
                                    oversize=self._handler(intake.refuse_oversized, ls.name))
            await listener.start()
            self.listeners.append(listener)
            self.intakes[ls.name] = intake
        self._tasks.append(asyncio.create_task(self._publish(), name="publisher"))
        self._tasks.append(asyncio.create_task(self.kafka_watch.run(), name="kafka-watch"))
        self._tasks.append(asyncio.create_task(self._prune(), name="pruner"))
        self._tasks.append(asyncio.create_task(self.profiles.watch(), name="profiles"))
        if self.alerts is not None:
            self._tasks.append(asyncio.create_task(self.alerts.run(), name="alerts"))
        if self.outbound is not None:
            self.outbound.start()
        self._watch_sighup()
        if self._http_enabled:
            await self._start_http()
        # Everything built so far lives as long as the process: keep it out of GC passes.
        gc.freeze()

    def _note_mapper_build(self) -> None:
        """Say (log, metric, /readyz) whether the mapper runs compiled: 3-4x apart."""
        self.mapper_build = mapper_status()
        compiled = self.mapper_build.startswith("compiled")
        self.metrics.mapper.info({"build": "compiled" if compiled else "pure",
                                  "detail": self.mapper_build})
        if compiled:
            log.info("mapper compiled", extra={"mapper": self.mapper_build})
        else:
            log.warning("mapper runs from source, 3-4x slower; run make setup to compile it",
                        extra={"mapper": self.mapper_build})

    def _watch_sighup(self) -> None:
        """Reload the profiles on SIGHUP: only possible from the main thread, on Unix."""
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is None or threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(sighup, self._on_sighup)
        except (NotImplementedError, RuntimeError, ValueError):
            return  # a loop without signal support (e.g. Windows' proactor)
        self._sighup = True

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading profiles")
        # In a thread: compiling the profiles must not hold up MLLP connections.
        reloads = [asyncio.create_task(asyncio.to_thread(self.profiles.reload),
                                       name="sighup")]
        if self.settings.encryption is not None:
            reloads.append(asyncio.create_task(self.reload_keys(), name="sighup-keys"))
        for task in reloads:
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

    async def reload_keys(self) -> bool:
        """Load the keyring again from the configured provider and seal with it from now on
        (``Sealer.replace``). False, with the keys in use kept and the reason logged, when
        it cannot be loaded or lacks a key in use. The provider's file (or KMS call) is
        read in a thread: MLLP connections are not held up."""
        from gateway.keys.providers import load_keyring

        assert self.settings.encryption is not None
        try:
            keyring = await asyncio.to_thread(load_keyring, self.settings.encryption)
            self.spool.sealer.replace(keyring)
        except Exception as exc:  # noqa: BLE001 - an SDK error (KMS) too: logged, counted
            self.metrics.keyring_reloads.labels("rejected").inc()
            detail = str(exc) if isinstance(exc, EncryptionError) else type(exc).__name__
            log.error("keyring reload refused; the keys in use stay",
                      extra={"error": detail})
            return False
        self.metrics.keyring_reloads.labels("ok").inc()
        self._note_keyring()
        log.info("keyring reloaded", extra={"current_key": keyring.current_key_id,
                                            "keys": len(keyring.key_ids)})
        return True

    def _note_keyring(self) -> None:
        keyring = self.spool.sealer.keyring
        if keyring is not None:
            self.metrics.keyring.info({"current_key": keyring.current_key_id,
                                       "keys": str(len(keyring.key_ids))})

    def _handler(self, answer: Callable[[bytes, str], Awaitable[IntakeResult]], name: str
                 ) -> Callable[[bytes, str], Awaitable[bytes | None]]:
        """``answer`` (an intake method) as the listener calls it: ACK bytes, counted by code."""
        if tracing.enabled():  # a span per frame; with tracing off, not even a check
            answer = traced_frames(answer, name)
        listener = next(ls for ls in self.settings.listeners if ls.name == name)
        # Every (code, sender) series exists from the start at 0; sender labels are bounded
        # by the listener's senders: entries (gateway/metrics.py).
        acks = {(code, sender): self.metrics.acks.labels(name, code, sender)
                for code in ("AA", "AE", "AR", "CA", "CE", "CR")
                for sender in sender_labels(listener.senders)}

        async def handle(frame: bytes, peer: str) -> bytes | None:
            result = await answer(frame, peer)
            if result.ack is not None:
                acks[result.code, result.sender].inc()
            return result.ack
        return handle

    async def _publish(self) -> None:
        # The producer may not reach Kafka yet; intake goes on regardless.
        backoff = 0.5
        while True:
            # Shielded: stopping the gateway mid-start lets the start finish (see stop()),
            # because aiokafka leaks its bootstrap connection when a start is cancelled.
            self._producer_start = asyncio.ensure_future(self.producer.start())
            try:
                await asyncio.shield(self._producer_start)
                break
            except Exception as exc:  # noqa: BLE001 - retried until Kafka answers
                error_class = getattr(exc, "cause", None) or type(exc).__name__
                self.kafka_watch.failed(error_class)
                log.warning("kafka not reachable yet; spooling",
                            extra={"error_class": error_class, "retry_in_s": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        await self.publisher.run()

    async def _prune(self) -> None:
        """Delete published rows and refusals past their retention, periodically."""
        cfg = self.settings.spool
        while True:
            now = time.time()
            try:
                deleted = await self.spool.prune(
                    published_before=now - cfg.retain_published_hours * 3600,
                    rejected_before=now - cfg.retain_rejected_hours * 3600)
                if self.settings.outbound is not None:
                    deleted += await self.spool.prune_outbound(
                        now - self.settings.outbound.retain_sent_hours * 3600)
                if deleted:
                    log.info("spool pruned", extra={"rows": deleted})
            except SpoolError as exc:
                log.warning("spool pruning failed", extra={"error_class": type(exc).__name__})
            await asyncio.sleep(cfg.prune_interval_s)

    async def _start_http(self) -> None:
        _check_can_listen(self.settings.http.host, self.settings.http.port)
        tls = self.settings.http.tls
        # HTTPS with the MLLP listeners' TLS policy (TLS 1.2+, client certs when set)
        factory = (None if tls is None
                   else lambda _cfg, _default: server_context(tls))
        cfg = uvicorn.Config(create_app(self, console=self), host=self.settings.http.host,
                             port=self.settings.http.port, log_config=None,
                             access_log=False, lifespan="on", ssl_context_factory=factory)
        self._http = QuietServer(cfg)  # SIGINT/SIGTERM stay with hl7gw.shutdown
        self._tasks.append(asyncio.create_task(self._http.serve(), name="http"))
        while not self._http.started:
            if self._tasks[-1].done():
                self._tasks[-1].result()  # raises the bind error
            await asyncio.sleep(0.02)
        sockets = [s for srv in self._http.servers for s in srv.sockets]
        self.http_port = int(sockets[0].getsockname()[1]) if sockets else None

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """See the module docstring."""
        try:
            depth = await self.spool.depth()
            spool_ok = True
        except Exception:  # noqa: BLE001 - reported, not raised
            depth, spool_ok = -1, False
        listening = bool(self.listeners) and all(ls.port for ls in self.listeners)
        return spool_ok and listening, {
            "spool": "ok" if spool_ok else "unavailable",
            "spool_depth": depth,
            "listeners": {ls.settings.name: ls.port for ls in self.listeners},
            "kafka": self.kafka_watch.state,
            "kafka_detail": self.kafka_watch.describe(),
            "oldest_pending_age_s": _rounded(await self.kafka_watch.oldest_pending_age()),
            "mapper": self.mapper_build,
            "profiles": self.profiles.status(),
            **({"outbound": await self.outbound.status()} if self.outbound is not None else {}),
        }

    async def stop(self, grace: float | None = None) -> None:
        """Stop intake first (finishing in-flight frames), then publishing and HTTP.

        Everything happens within ``grace`` seconds (default ``drain_timeout_s``): each
        step gets what the earlier ones left, and whatever is unpublished stays spooled.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.settings.drain_timeout_s if grace is None else grace)

        def left(reserve: float = 0.0) -> float:
            return max(deadline - loop.time() - reserve, 0.0)

        if self._sighup:
            loop.remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        await asyncio.gather(*self._reloads, return_exceptions=True)
        # Frames in flight and the last publish leave STOP_RESERVE_S for the steps after
        # them: a half-sent frame or a long backlog cannot push those past the deadline.
        for listener in self.listeners:
            await listener.stop(left(STOP_RESERVE_S))
        if self.outbound is not None:
            # At once: a message in flight stays queued and is resent after the restart.
            await self.outbound.stop()
        for task in self._tasks:
            if task.get_name() in ("publisher", "pruner", "profiles", "kafka-watch",
                                   "alerts"):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.alerts is not None:  # a webhook send in flight gets a moment, no more
            await self.alerts.close(min(left(STOP_RESERVE_S), 2.0))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._final_drain(), timeout=left(STOP_RESERVE_S))
        http = next((t for t in self._tasks if t.get_name() == "http"), None)
        if self._http is not None and http is not None:
            # Not cancelled at once: uvicorn logs a cancelled lifespan as a traceback.
            await stop_server(self._http, http, max(left(), 0.5))
        await _finish(self._tasks, left())
        self._tasks.clear()
        if self._producer_start is not None and not self._producer_start.done():
            # Let a start in progress finish (a cancelled aiokafka start leaks its
            # bootstrap connection), but not past the deadline.
            await _finish([self._producer_start], left())
        # Records in flight are kept in the spool anyway; with Kafka down, waiting for
        # their acks until the deadline would only delay the restart.
        flush_within = left() if self.kafka_watch.up else min(left(), 1.0)
        with contextlib.suppress(Exception):
            await self.producer.stop(flush_within=flush_within)
        # Off the loop: a worker past the deadline is terminated, which takes a moment.
        await asyncio.to_thread(self.mapping.stop, left())
        await self.spool.stop()

    async def _final_drain(self) -> None:
        """Publish what is pending if Kafka answers; what is not stays in the spool."""
        if not self.kafka_watch.up or not self.producer.started:
            return
        while await self.publisher.drain_once():
            pass


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


async def _finish(tasks: Sequence[asyncio.Future[Any]], within: float) -> None:
    """Wait up to ``within`` seconds for ``tasks``, then cancel the rest and collect them."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=within)
    for task in late:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _check_can_listen(host: str, port: int) -> None:
    """Raise ``ListenError`` (one line) when the HTTP port cannot be bound.

    uvicorn reports a bind error as a log line and ``SystemExit`` out of its task; a probe
    bind first (with SO_REUSEADDR, as uvicorn binds) gives the operator the same one-line
    error and exit code as a taken MLLP port.
    """
    if port == 0:
        return
    try:
        socket.create_server((host, port)).close()
    except OSError as exc:
        raise ListenError.bind_failed("HTTP", host, port, exc,
                                      "http.port or hl7gw serve --http-port") from None
