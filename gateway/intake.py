"""Intake: one framed message in, one ACK out, with the message durable before the ACK.

Order of work for a frame: choose the sender's mapping profile, decode the bytes, check
the header against what the listener accepts and the message's structure against its spec
(required segments and identifiers — cheap, no FHIR built), commit the raw bytes to the
spool, and only then answer. Mapping to FHIR happens after
the ACK, in the publisher, so the ACK path costs a parse and a commit, not a mapping.

Per-sender settings are settled by ``gateway.prepare``, the one path every caller that
maps a message uses (the worker, ``hl7gw map``, the console): the profile is the most
specific one for MSH-3.1, MSH-4.1 and MSH-12.1 read from the envelope (string compares
only, no parse); the charset is a byte order mark's, else the profile's, else the
listener's ``senders:`` entry's, else MSH-18's, else the listener's; the time zone is the
profile's, else the sender entry's ``default_timezone``, else the gateway's.

The charset and zone used are stored with the row; the publisher maps with the profile
live at mapping time, whose charset and zone win over the row's (so a replay after a
profile fix uses the fix).

Every refusal is stored with its raw bytes in the spool's ``rejected`` table, except a
refusal because the spool is at capacity or failed to store (a full disk): there is no
room to keep it, and the answer (AE/CE, ERR 207) tells the sender to keep the message and
resend it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mappers
from connectors import tracing
from gateway.ack import Envelope, ack_bytes, answer_code, build_ack, sniff_envelope
from gateway.batch import build_batch_ack, split_batch
from gateway.config import ListenerSettings
from gateway.errors import SpoolAtCapacity, SpoolError
from gateway.metrics import GatewayMetrics, sender_label
from gateway.prepare import UndecodableMessage, check, choose_profile, prepare, sender_entry
from gateway.spool import Accepted, Rejected, Spool, StoreOutcome
from mappers.errors import (
    MessageError,
    UnsupportedEvent,
    UnsupportedMessageType,
    UnsupportedProcessingId,
    UnsupportedVersion,
)
from mappers.hl7v2.envelope import HL7_CHARSETS, Sniffed, sniff, sniff_text

if TYPE_CHECKING:
    from gateway.prepare import Prepared
    from gateway.profiles import ProfileStore

log = logging.getLogger("hl7gw.intake")

__all__ = ["HL7_CHARSETS", "Intake", "IntakeResult", "MessageTooLarge", "StoreFailed",
           "UndecodableMessage", "event_id"]


class StoreFailed(MessageError):
    """The spool could not store an accepted message (a full disk, an I/O error).

    AE (CE in enhanced mode) with ERR 207: the sender keeps the message and resends it;
    nothing was kept, so nothing is lost and nothing is half-stored.
    """

    ack_code = "AE"
    err_code = "207"


class MessageTooLarge(MessageError):
    """A frame over the listener's ``max_frame_bytes``: refused whole (AR), never resent as is.

    Only its first bytes were read (and are kept in ``rejected``); the rest was skipped
    unbuffered. The limit follows what Kafka accepts (docs/configuration.md).
    """

    ack_code = "AR"
    err_code = "207"


@dataclass(frozen=True)
class IntakeResult:
    """The answer to send (None: the sender asked for none) and what the spool did."""

    ack: bytes | None
    code: str
    outcome: StoreOutcome | None
    sender: str = "other"  # the bounded metric label (gateway.metrics.sender_label)


@dataclass(frozen=True)
class _Checked:
    """A message that passed intake checks, ready to be stored."""

    row: Accepted
    env: Envelope
    sender_label: str  # the bounded metric label of the senders: entry it matched


class Intake:
    """Turns frames into durable spool rows and ACKs for one listener."""

    def __init__(self, listener: ListenerSettings, spool: Spool, metrics: GatewayMetrics,
                 *, default_timezone: str = "UTC", max_pending: int = 1_000_000,
                 profiles: ProfileStore | None = None) -> None:
        self.listener = listener
        self.profiles = profiles  # passed in by the service; None: no profiles
        self.spool = spool
        self.metrics = metrics
        self.default_timezone = default_timezone
        self.max_pending = max_pending
        supported = mappers.supported_message_types()
        wanted = listener.message_types
        self.accepted_types = frozenset(wanted) & supported if wanted else supported
        self.accepted_codes = frozenset(t.split("^")[0] for t in self.accepted_types)
        self._on_stored: list[Callable[[], None]] = []
        # Labelled children resolved once: labels() costs microseconds on every frame.
        self._frames = metrics.frames.labels(listener.name)
        self._bytes = metrics.bytes.labels(listener.name)

    def on_stored(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after each newly stored message (wakes the publisher)."""
        self._on_stored.append(callback)

    async def handle(self, frame: bytes, peer: str) -> IntakeResult:
        """Process one frame; never raises for bad input, nor when the spool fails."""
        self._frames.inc()
        self._bytes.inc(len(frame))
        sniffed = sniff(frame)
        if sniffed.batch:
            return await self._handle_batch(frame, peer)
        env = sniffed.envelope
        try:
            checked = self._check(frame, sniffed, peer)
        except MessageError as exc:
            return await self._reject(frame, env, peer, exc)
        try:
            outcome = await self._store(checked.row)
        except SpoolError:
            log.error("could not store an accepted message; answered 207, sender resends",
                      extra={"listener": self.listener.name, "peer": peer})
            return await self._reject(frame, env, peer, StoreFailed(
                "the gateway could not store the message (storage error); resend it later"))
        code = answer_code("AA", env) or "AA"
        ack = outcome.ack or None  # b"" is stored when the sender asked for no ACK
        return IntakeResult(ack, code, outcome, checked.sender_label)

    def sender_label(self, env: Envelope) -> str:
        """The bounded ``sender`` metric label: the matching ``senders:`` entry, or other."""
        return sender_label(sender_entry(self.listener.senders, env))

    # -- checks ---------------------------------------------------------------------------

    def _check(self, frame: bytes, sniffed: Sniffed, peer: str) -> _Checked:
        """Everything that decides AA/AE/AR before the commit; raises MessageError.

        Profile, charset, decoding and zone: ``gateway.prepare``, as for every caller.
        """
        env = sniffed.envelope
        sender = sender_entry(self.listener.senders, env)
        profile = choose_profile(self.profiles.current, env) \
            if self.profiles is not None else None
        prepared = prepare(
            frame, sniffed=sniffed, profile=profile,
            charset=sender.charset if sender else None,
            timezone=sender.default_timezone if sender else None,
            default_charset=self.listener.charset, default_timezone=self.default_timezone)
        header = self._check_content(prepared)
        if self.spool.pending_rows >= self.max_pending:
            raise SpoolAtCapacity(
                f"spool holds {self.max_pending} unpublished messages; resend later")
        sender_id = f"{header.sending_application}|{header.sending_facility}"
        sha = hashlib.sha256(frame).hexdigest()
        if not prepared.charset.startswith("utf-16") and not (
                env.sending_application + env.sending_facility + env.receiving_application
                + env.receiving_facility + env.control_id).isascii():
            # Echoed fields were read from the bytes as Latin-1; in a UTF-8 message they
            # would come back garbled: read them again from the decoded text.
            env = sniff_text(prepared.text).envelope
        code = answer_code("AA", env)
        ack = ack_bytes(build_ack(env, code, ack_control_id=_ack_id()), prepared.charset) \
            if code else b""
        row = Accepted(
            listener=self.listener.name, peer=peer, sender=sender_id,
            control_id=header.control_id, message_type=header.message_type, sha256=sha,
            raw=frame, ack=ack, event_id=event_id(sender_id, header.control_id, sha),
            charset=prepared.charset, timezone=prepared.timezone,
            traceparent=tracing.current_traceparent())  # None while tracing is off
        return _Checked(row, env, sender_label(sender))

    def _check_content(self, prepared: Prepared) -> mappers.Header:
        # One parse: mappers.check reads the header and the structure; the listener's own
        # limits (types, versions, processing ids) are checked on the header it returns.
        try:
            header = check(prepared)
        except MessageError:
            raise
        except Exception as exc:  # noqa: BLE001 - a checker bug must not kill the listener
            log.error("message check failed unexpectedly",
                      extra={"listener": self.listener.name,
                             "error_class": type(exc).__name__})
            raise MessageError(
                f"internal error while checking ({type(exc).__name__})") from None
        self._check_envelope(header)
        return header

    def _check_envelope(self, header: mappers.Header) -> None:
        if header.version not in self.listener.versions:
            raise UnsupportedVersion(
                f"HL7 version {header.version or '(empty)'} is not accepted here",
                segment="MSH", sequence=1, field=12)
        if header.processing_id not in self.listener.processing_ids:
            raise UnsupportedProcessingId(
                f"processing id {header.processing_id or '(empty)'} is not accepted here",
                segment="MSH", sequence=1, field=11)
        if header.message_type in self.accepted_types:
            return
        if header.message_code in self.accepted_codes:
            raise UnsupportedEvent(f"event {header.message_type} is not accepted here",
                                   segment="MSH", sequence=1, field=9)
        raise UnsupportedMessageType(
            f"message type {header.message_type} is not accepted here",
            segment="MSH", sequence=1, field=9)

    # -- storing and refusing -------------------------------------------------------------

    async def _store(self, row: Accepted) -> StoreOutcome:
        if row.traceparent is not None:  # tracing is on
            return await self._store_traced(row)
        return await self._store_row(row)

    async def _store_traced(self, row: Accepted) -> StoreOutcome:
        """:meth:`_store_row` inside a ``hl7gw.spool.commit`` span (ids only, no content)."""
        attributes = {"hl7gw.event_id": row.event_id, "hl7gw.sender": row.sender,
                      "hl7gw.control_id": row.control_id,
                      "hl7gw.message_type": row.message_type}
        with tracing.span("hl7gw.spool.commit", attributes=attributes) as current:
            outcome = await self._store_row(row)
            tracing.set_attributes(current, {"hl7gw.outcome": outcome.status,
                                             "hl7gw.spool_row": outcome.row_id})
            return outcome

    async def _store_row(self, row: Accepted) -> StoreOutcome:
        name = self.listener.name
        outcome = await self.spool.store(row)
        if outcome.status == "duplicate":
            self.metrics.duplicates.labels(name).inc()
        elif outcome.status == "conflict":
            self.metrics.conflicts.labels(name).inc()
            log.warning("control id reused with different content",
                        extra={"listener": name, "sender": row.sender,
                               "control_id": row.control_id, "row": outcome.row_id})
        if outcome.status != "duplicate":
            for callback in self._on_stored:
                callback()
        return outcome

    async def refuse_oversized(self, head: bytes, peer: str) -> IntakeResult:
        """A frame over ``max_frame_bytes``, of which ``head`` was read: AR naming the limit.

        The envelope for the ACK is read from ``head`` (MSH comes first); ``head`` is what
        the ``rejected`` table keeps of it.
        """
        self._frames.inc()
        self._bytes.inc(len(head))
        limit = self.listener.max_frame_bytes
        return await self._reject(head, sniff(head).envelope, peer, MessageTooLarge(
            f"message larger than this listener accepts ({limit} bytes, max_frame_bytes);"
            " split it or send its large content by reference"))

    def _nak(self, env: Envelope, exc: MessageError) -> bytes:
        code = answer_code(exc.ack_code, env)
        if code is None:
            return b""
        return ack_bytes(build_ack(env, code, ack_control_id=_ack_id(), error=exc), "utf-8")

    async def _reject(self, frame: bytes, env: Envelope, peer: str,
                      exc: MessageError) -> IntakeResult:
        name = self.listener.name
        ack = self._nak(env, exc)
        label = self.sender_label(env)
        self.metrics.rejected.labels(name, exc.err_code, label).inc()
        log.info("message refused", extra={
            "listener": name, "peer": peer, "ack_code": exc.ack_code,
            "err_code": exc.err_code, "location": exc.location,
            "control_id": env.control_id, "bytes": len(frame)})
        outcome = None
        if not isinstance(exc, SpoolAtCapacity | StoreFailed):  # no room, or no storage
            outcome = await self._keep_refused(frame, env, peer, exc, ack)
        return IntakeResult(ack or None, answer_code(exc.ack_code, env) or exc.ack_code,
                            outcome, label)

    async def _keep_refused(self, frame: bytes, env: Envelope, peer: str,
                            exc: MessageError, ack: bytes) -> StoreOutcome | None:
        row = Rejected(listener=self.listener.name, peer=peer,
                       sender=f"{env.sending_application}|{env.sending_facility}",
                       control_id=env.control_id, ack_code=exc.ack_code,
                       err_code=exc.err_code, reason=str(exc), raw=frame, ack=ack)
        try:
            return await self.spool.store(row)
        except SpoolError:
            # The refusal stands even if we could not keep the bytes; the sender resends.
            log.error("could not keep refused message", extra={"listener": self.listener.name})
            return None

    # -- batches --------------------------------------------------------------------------

    async def _handle_batch(self, frame: bytes, peer: str) -> IntakeResult:
        """FHS/BHS…BTS/FTS in one frame: each message checked and spooled, one answer."""
        try:
            batch = split_batch(frame.decode("latin-1"))
        except MessageError as exc:
            return await self._reject(frame, sniff_envelope(""), peer, exc)
        if batch.error is not None:
            return await self._reject(frame, batch.envelope, peer, batch.error)
        results: list[tuple[str, bytes, MessageError | None]] = []
        for part in batch.messages:
            raw = part.encode("latin-1")
            sniffed = sniff(raw)
            env = sniffed.envelope
            problem: MessageError | None = None
            try:
                checked = self._check(raw, sniffed, peer)
                outcome = await self._store(checked.row)
            except SpoolError:
                problem = StoreFailed(
                    "the gateway could not store the message (storage error); resend it")
            except MessageError as exc:
                problem = exc
            if problem is None:
                results.append((env.control_id, outcome.ack, None))
                continue
            refused = await self._reject(raw, env, peer, problem)
            results.append((env.control_id, refused.ack or b"", problem))
        ack, code = build_batch_ack(batch, results, mode=self.listener.batch_ack,
                                    ack_control_id=_ack_id())
        return IntakeResult(ack_bytes(ack, "utf-8"), code, None)


def event_id(sender: str, control_id: str, sha256: str) -> str:
    """Stable CloudEvents id for one message: same sender, id and bytes → same event id."""
    h = hashlib.sha256(f"{sender}\x1f{control_id}\x1f{sha256}".encode()).hexdigest()
    # str(uuid.UUID(bytes=digest[:16])), spelled out: the UUID object cost 7 us a frame.
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _ack_id() -> str:
    return f"ACK{time.time_ns():x}"[:20]

