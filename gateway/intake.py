"""Intake: one framed message in, one ACK out, with the message durable before the ACK.

Order of work for a frame: choose the sender's mapping profile, decode the bytes, check
the header against what the listener accepts and the message's structure against its spec
(required segments and identifiers — cheap, no FHIR built), commit the raw bytes to the
spool, and only then answer. Mapping to FHIR happens after
the ACK, in the publisher, so the ACK path costs a parse and a commit, not a mapping.

Per-sender settings, first found wins:

- profile: the live ``ProfileSet`` (``gateway.profiles.ProfileStore``) picks the most
  specific profile for MSH-3.1, MSH-4.1 and MSH-12 read from the envelope (string
  compares only, no parse); its specs are the ones the structure is checked against;
- charset: the profile's ``charset``, else the listener's ``senders:`` entry, else MSH-18,
  else the listener's ``charset``;
- time zone: the profile's ``timezone``, else the sender entry's ``default_timezone``,
  else the gateway's ``default_timezone``.

The charset and zone used are stored with the row; the publisher maps with the profile
live at mapping time, whose charset and zone win over the row's (so a replay after a
profile fix uses the fix).

Every refusal is stored with its raw bytes in the spool's ``rejected`` table, except a
refusal because the spool is at capacity (there is no room to keep it; the sender keeps
the message and resends).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mappers
from gateway.ack import Envelope, answer_code, build_ack, sniff_envelope
from gateway.batch import build_batch_ack, split_batch
from gateway.config import ListenerSettings, SenderSettings
from gateway.errors import SpoolAtCapacity, SpoolError
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

if TYPE_CHECKING:
    from gateway.profiles import ProfileStore
    from mappers.profiles import Profile

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
    """The answer to send (None: the sender asked for none) and what the spool did."""

    ack: bytes | None
    code: str
    outcome: StoreOutcome | None


@dataclass(frozen=True)
class _Checked:
    """A message that passed intake checks, ready to be stored."""

    row: Accepted
    env: Envelope


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
        """Process one frame; never raises for bad input, only for a failing spool."""
        self._frames.inc()
        self._bytes.inc(len(frame))
        latin = frame.decode("latin-1")
        if latin.lstrip("\ufeff\xef\xbb\xbf\r\n ").startswith(("FHS", "BHS")):
            return await self._handle_batch(frame, latin, peer)
        env = sniff_envelope(latin)
        try:
            checked = self._check(frame, latin, env, peer)
        except MessageError as exc:
            return await self._reject(frame, env, peer, exc)
        outcome = await self._store(checked.row)
        code = answer_code("AA", env) or "AA"
        ack = outcome.ack or None  # b"" is stored when the sender asked for no ACK
        return IntakeResult(ack, code, outcome)

    # -- checks ---------------------------------------------------------------------------

    def _check(self, frame: bytes, latin: str, env: Envelope, peer: str) -> _Checked:
        """Everything that decides AA/AE/AR before the commit; raises MessageError."""
        sender = self._sender(env)
        profile = self._profile(env)
        text, charset = self._decode(frame, latin, sender, profile)
        tz = (profile.timezone if profile else None) \
            or (sender.default_timezone if sender else None) or self.default_timezone
        header = self._check_content(text, tz, profile)
        if self.spool.pending_rows >= self.max_pending:
            raise SpoolAtCapacity(
                f"spool holds {self.max_pending} unpublished messages; resend later")
        sender_id = f"{header.sending_application}|{header.sending_facility}"
        sha = hashlib.sha256(frame).hexdigest()
        code = answer_code("AA", env)
        ack = build_ack(env, code, ack_control_id=_ack_id()).encode(charset, "replace") \
            if code else b""
        row = Accepted(
            listener=self.listener.name, peer=peer, sender=sender_id,
            control_id=header.control_id, message_type=header.message_type, sha256=sha,
            raw=frame, ack=ack, event_id=event_id(sender_id, header.control_id, sha),
            charset=charset, timezone=tz)
        return _Checked(row, env)

    def _sender(self, env: Envelope) -> SenderSettings | None:
        if not self.listener.senders:
            return None
        comp = env.encoding_chars[0]
        app = env.sending_application.split(comp)[0]
        facility = env.sending_facility.split(comp)[0]
        return next((s for s in self.listener.senders if s.matches(app, facility)), None)

    def _profile(self, env: Envelope) -> Profile | None:
        """The live profile for this envelope's MSH-3.1, MSH-4.1 and MSH-12 (or None)."""
        if self.profiles is None:
            return None
        current = self.profiles.current
        if not current.profiles:
            return None
        comp = env.encoding_chars[0]
        return current.select(env.sending_application.split(comp)[0].strip(),
                              env.sending_facility.split(comp)[0].strip(), env.version)

    def _decode(self, frame: bytes, latin: str, sender: SenderSettings | None,
                profile: Profile | None = None) -> tuple[str, str]:
        if not frame.strip(b" \r\n\x00"):
            raise UnreadableMessage("empty message: the frame holds no HL7 segments")
        charset = (profile.charset if profile else None) \
            or (sender.charset if sender else None) or self._declared_charset(latin)
        try:
            return frame.decode(charset), charset
        except UnicodeDecodeError as exc:
            raise UndecodableMessage(
                f"bytes not valid {charset} at offset {exc.start};"
                " set MSH-18, the sender's or the profile's charset",
                segment="MSH", sequence=1, field=18
            ) from None

    def _declared_charset(self, latin: str) -> str:
        first = latin.split("\r", 1)[0].split("\n", 1)[0]
        if first.startswith("MSH") and len(first) > 3:
            fields = first.split(first[3])
            if len(fields) > 17 and fields[17].strip():
                declared = fields[17].split("~")[0].strip().upper()
                return HL7_CHARSETS.get(declared, self.listener.charset)
        return self.listener.charset

    def _check_content(self, text: str, tz: str, profile: Profile | None = None
                       ) -> mappers.Header:
        # One parse: mappers.check reads the header and the structure; the listener's own
        # limits (types, versions, processing ids) are checked on the header it returns.
        try:
            header = mappers.check(text, default_tz=tz, profile=profile)
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

    def _nak(self, env: Envelope, exc: MessageError) -> bytes:
        code = answer_code(exc.ack_code, env)
        if code is None:
            return b""
        return build_ack(env, code, ack_control_id=_ack_id(), error=exc).encode(
            "utf-8", "replace")

    async def _reject(self, frame: bytes, env: Envelope, peer: str,
                      exc: MessageError) -> IntakeResult:
        name = self.listener.name
        ack = self._nak(env, exc)
        self.metrics.rejected.labels(name, exc.err_code).inc()
        log.info("message refused", extra={
            "listener": name, "peer": peer, "ack_code": exc.ack_code,
            "err_code": exc.err_code, "location": exc.location,
            "control_id": env.control_id, "bytes": len(frame)})
        outcome = None
        if not isinstance(exc, SpoolAtCapacity):
            outcome = await self._keep_refused(frame, env, peer, exc, ack)
        return IntakeResult(ack or None, answer_code(exc.ack_code, env) or exc.ack_code,
                            outcome)

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

    async def _handle_batch(self, frame: bytes, latin: str, peer: str) -> IntakeResult:
        """FHS/BHS…BTS/FTS in one frame: each message checked and spooled, one answer."""
        try:
            batch = split_batch(latin)
        except MessageError as exc:
            return await self._reject(frame, sniff_envelope(""), peer, exc)
        if batch.error is not None:
            return await self._reject(frame, batch.envelope, peer, batch.error)
        results: list[tuple[str, bytes, MessageError | None]] = []
        for part in batch.messages:
            raw = part.encode("latin-1")
            env = sniff_envelope(part)
            try:
                checked = self._check(raw, part, env, peer)
            except MessageError as exc:
                refused = await self._reject(raw, env, peer, exc)
                results.append((env.control_id, refused.ack or b"", exc))
                continue
            outcome = await self._store(checked.row)
            results.append((env.control_id, outcome.ack, None))
        ack, code = build_batch_ack(batch, results, mode=self.listener.batch_ack,
                                    ack_control_id=_ack_id())
        return IntakeResult(ack.encode("utf-8", "replace"), code, None)


def event_id(sender: str, control_id: str, sha256: str) -> str:
    """Stable CloudEvents id for one message: same sender, id and bytes → same event id."""
    h = hashlib.sha256(f"{sender}\x1f{control_id}\x1f{sha256}".encode()).hexdigest()
    # str(uuid.UUID(bytes=digest[:16])), spelled out: the UUID object cost 7 us a frame.
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _ack_id() -> str:
    return f"ACK{time.time_ns():x}"[:20]

