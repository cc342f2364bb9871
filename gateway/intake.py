"""Intake: one framed message in, one ACK out, with the message durable before the ACK.

Order of work for a frame: decode the bytes (per-listener charset, else MSH-18), read the
header, check it against what the listener accepts, map it to FHIR (so a message whose
content we cannot use is refused now, while the sender is still listening, instead of
being ACKed and lost later), commit to the spool, and only then return the ACK.
Every refusal is stored with its raw bytes in the spool's ``rejected`` table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import orjson

import mappers
from gateway.ack import Envelope, build_ack, sniff_envelope
from gateway.config import ListenerSettings
from gateway.errors import SpoolError
from gateway.metrics import GatewayMetrics
from gateway.spool import Accepted, Rejected, Spool, StoreOutcome
from mappers.errors import (
    DataTypeError,
    MessageError,
    UnreadableMessage,
    UnsupportedEvent,
    UnsupportedMessageType,
    UnsupportedProcessingId,
    UnsupportedVersion,
)

log = logging.getLogger("hl7gw.intake")

# MSH-18 values (HL7 table 0211) → Python codecs.
HL7_CHARSETS = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/5": "iso8859-5",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "ISO IR6": "ascii",
    "ISO IR100": "latin-1",
    "ISO IR192": "utf-8",
    "WINDOWS-1252": "cp1252",
    "CP1252": "cp1252",
}


class UndecodableMessage(DataTypeError):
    """The bytes are not valid in the charset the sender declared or was configured with."""


@dataclass(frozen=True)
class IntakeResult:
    """The ACK to send and what the spool did with the message."""

    ack: bytes
    code: str
    outcome: StoreOutcome | None


class Intake:
    """Turns frames into durable spool rows and ACKs for one listener."""

    def __init__(self, listener: ListenerSettings, spool: Spool, metrics: GatewayMetrics,
                 *, default_timezone: str = "UTC") -> None:
        self.listener = listener
        self.spool = spool
        self.metrics = metrics
        self.default_timezone = default_timezone
        supported = mappers.supported_message_types()
        wanted = listener.message_types
        self.accepted_types = frozenset(wanted) & supported if wanted else supported
        self.accepted_codes = frozenset(t.split("^")[0] for t in self.accepted_types)
        self._on_stored: list[Callable[[], None]] = []

    def on_stored(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after each newly stored message (wakes the publisher)."""
        self._on_stored.append(callback)

    async def handle(self, frame: bytes, peer: str) -> IntakeResult:
        """Process one frame; never raises for bad input, only for a failing spool."""
        name = self.listener.name
        self.metrics.frames.labels(name).inc()
        self.metrics.bytes.labels(name).inc(len(frame))
        latin = frame.decode("latin-1")
        env = sniff_envelope(latin)
        try:
            text, charset = self._decode(frame, latin)
            accepted = self._accept(text, charset, frame, env, peer)
        except MessageError as exc:
            return await self._reject(frame, env, peer, exc)
        except Exception as exc:  # noqa: BLE001 - a mapping bug must not kill the listener
            log.error("mapping failed unexpectedly",
                      extra={"listener": name, "error_class": type(exc).__name__,
                             "control_id": env.control_id}, exc_info=False)
            err = MessageError(f"internal error while mapping ({type(exc).__name__})")
            return await self._reject(frame, env, peer, err)
        outcome = await self.spool.store(accepted)
        if outcome.status == "duplicate":
            self.metrics.duplicates.labels(name).inc()
        elif outcome.status == "conflict":
            self.metrics.conflicts.labels(name).inc()
            log.warning("control id reused with different content",
                        extra={"listener": name, "sender": accepted.sender,
                               "control_id": accepted.control_id, "row": outcome.row_id})
        if outcome.status != "duplicate":
            for callback in self._on_stored:
                callback()
        return IntakeResult(outcome.ack, "AA", outcome)

    def _decode(self, frame: bytes, latin: str) -> tuple[str, str]:
        if not frame.strip(b" \r\n\x00"):
            raise UnreadableMessage("empty message: the frame holds no HL7 segments")
        charset = self._charset(latin)
        try:
            return frame.decode(charset), charset
        except UnicodeDecodeError as exc:
            raise UndecodableMessage(
                f"bytes not valid {charset} at offset {exc.start};"
                " set MSH-18 or the listener's charset", segment="MSH", field=18
            ) from None

    def _charset(self, latin: str) -> str:
        env_fields = latin.split("\r", 1)[0].split("\n", 1)[0]
        if env_fields.startswith("MSH") and len(env_fields) > 3:
            fields = env_fields.split(env_fields[3])
            if len(fields) > 17 and fields[17].strip():
                declared = fields[17].split("~")[0].strip().upper()
                return HL7_CHARSETS.get(declared, self.listener.charset)
        return self.listener.charset

    def _accept(self, text: str, charset: str, raw: bytes, env: Envelope,
                peer: str) -> Accepted:
        header = mappers.parse(text).header
        self._check_envelope(header)
        result = mappers.convert(text, default_tz=self.default_timezone)
        sender = f"{header.sending_application}|{header.sending_facility}"
        sha = hashlib.sha256(raw).hexdigest()
        ack = build_ack(env, "AA", ack_control_id=_ack_id())
        summary = orjson.dumps({
            "issues": [dataclasses.asdict(i) for i in result.issues],
            "unmapped": result.unmapped,
        }).decode()
        return Accepted(
            listener=self.listener.name, peer=peer, sender=sender,
            control_id=header.control_id, message_type=header.message_type, sha256=sha,
            raw=raw, ack=ack.encode(charset, "replace"), event_id=event_id(sender,
            header.control_id, sha), patient_key=result.patient_key,
            payload=orjson.dumps(result.bundle), summary=summary,
        )

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

    async def _reject(self, frame: bytes, env: Envelope, peer: str,
                      exc: MessageError) -> IntakeResult:
        name = self.listener.name
        ack = build_ack(env, exc.ack_code, ack_control_id=_ack_id(), error=exc).encode(
            "utf-8", "replace")
        row = Rejected(listener=name, peer=peer,
                       sender=f"{env.sending_application}|{env.sending_facility}",
                       control_id=env.control_id, ack_code=exc.ack_code,
                       err_code=exc.err_code, reason=str(exc), raw=frame, ack=ack)
        self.metrics.rejected.labels(name, exc.err_code).inc()
        log.info("message refused", extra={
            "listener": name, "peer": peer, "ack_code": exc.ack_code,
            "err_code": exc.err_code, "location": exc.location,
            "control_id": env.control_id, "bytes": len(frame)})
        try:
            outcome = await self.spool.store(row)
        except SpoolError:
            # The refusal stands even if we could not keep the bytes; the sender resends.
            log.error("could not keep refused message", extra={"listener": name})
            outcome = None
        return IntakeResult(ack, exc.ack_code, outcome)


def event_id(sender: str, control_id: str, sha256: str) -> str:
    """Stable CloudEvents id for one message: same sender, id and bytes → same event id."""
    digest = hashlib.sha256(f"{sender}\x1f{control_id}\x1f{sha256}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def _ack_id() -> str:
    return f"ACK{time.time_ns():x}"[:20]

