"""One path from received bytes to a Bundle, used by every caller that maps a message.

MLLP intake, the mapping worker (and so replay, which re-queues rows for it), ``hl7gw map``,
``hl7gw profiles check`` and the console's message view and playground all go through the
same steps, each owned here once:

1. **sniff** the MSH envelope from the bytes (``mappers.hl7v2.envelope.sniff``);
2. **choose the profile** from MSH-3.1, MSH-4.1 and MSH-12.1 (``choose_profile``);
3. **decide the charset**: a byte order mark or a UTF-16 layout (the bytes cannot be read
   any other way), else the profile's ``charset``, else the sender-level charset (the
   listener's ``senders:`` entry at intake; the charset stored with the row in the
   worker, which intake decided the same way), else MSH-18, else the default;
4. **decode** (strictly at intake, where a refusal is still possible; with replacement
   characters afterwards, as the bytes were already accepted);
5. **decide the time zone**: the profile's, else the sender-level one, else the default;
6. **convert** (or **check**, or **explain**) with that profile and zone;
7. **describe** a refusal as one line: ``RequiredFieldMissing at PID-3: text``.

A caller supplies only what it alone knows (the sender-level settings and its defaults),
so the same bytes give the same Bundle whichever way they come in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import mappers
from mappers.errors import DataTypeError, MessageError, UnreadableMessage
from mappers.hl7v2.envelope import Envelope, Sniffed, sniff, sniff_text
from mappers.profiles import EMPTY_PROFILES, Profile, ProfileSet

if TYPE_CHECKING:
    from gateway.config import SenderSettings


class UndecodableMessage(DataTypeError):
    """The bytes are not valid in the charset the sender declared or was configured with."""


class _Auto:
    """The marker for "choose the profile from MSH, as the gateway does"."""

    def __repr__(self) -> str:
        return "AUTO"


AUTO: Final = _Auto()
_BLANK: Final = re.compile(rb"[ \r\n\x00]*")
ProfileChoice = Profile | None | _Auto


@dataclass(slots=True)
class Prepared:
    """A message ready to map: its text and what it is mapped with (read-only by convention;
    not frozen, which would cost a per-field ``object.__setattr__`` on every frame)."""

    text: str
    charset: str  # "" when the caller gave text, not bytes
    timezone: str
    profile: Profile | None
    envelope: Envelope


def sender_entry(senders: Sequence[SenderSettings], env: Envelope) -> SenderSettings | None:
    """The listener's first ``senders:`` entry for MSH-3.1 and MSH-4.1, or None."""
    if not senders:
        return None
    comp = env.encoding_chars[0]
    app = env.sending_application.split(comp)[0]
    facility = env.sending_facility.split(comp)[0]
    return next((s for s in senders if s.matches(app, facility)), None)


def choose_profile(profiles: ProfileSet, env: Envelope) -> Profile | None:
    """The most specific live profile for the envelope's MSH-3.1, MSH-4.1 and MSH-12.1."""
    if not profiles.profiles:
        return None
    app, facility, version = env.sender_key
    return profiles.select(app, facility, version)


def choose_charset(sniffed: Sniffed, profile: Profile | None, sender_charset: str | None,
                   default: str) -> str:
    """Byte layout, else profile, else sender-level charset, else MSH-18, else default."""
    if sniffed.layout:
        return sniffed.layout
    return (profile.charset if profile is not None else None) or sender_charset \
        or sniffed.declared or default


def choose_timezone(profile: Profile | None, sender_timezone: str | None,
                    default: str) -> str:
    """The profile's zone, else the sender-level one, else the default."""
    return (profile.timezone if profile is not None else None) or sender_timezone or default


def decode(raw: bytes, charset: str, errors: Literal["strict", "replace"]) -> str:
    """``raw`` as text; ``UndecodableMessage`` (strict) naming the charset and the offset."""
    try:
        return raw.decode(charset, errors)
    except UnicodeDecodeError as exc:
        raise UndecodableMessage(
            f"bytes not valid {charset} at offset {exc.start};"
            " set MSH-18, the sender's or the profile's charset",
            segment="MSH", sequence=1, field=18) from None


def prepare(raw: bytes, *, profiles: ProfileSet = EMPTY_PROFILES,
            profile: ProfileChoice = AUTO, charset: str | None = None,
            timezone: str | None = None, default_charset: str = "utf-8",
            default_timezone: str = "UTC", errors: Literal["strict", "replace"] = "strict",
            sniffed: Sniffed | None = None) -> Prepared:
    """Decode received bytes and settle the profile, charset and zone they are mapped with.

    ``profile``: ``AUTO`` chooses from ``profiles`` by MSH; a profile or None is taken as
    given (``--profile``, the playground's choice). ``charset`` and ``timezone`` are the
    sender-level settings; ``sniffed`` saves a second sniff when the caller has one.
    Raises ``UnreadableMessage`` for an empty message and ``UndecodableMessage``.
    """
    if sniffed is None:
        sniffed = sniff(raw)
    chosen = choose_profile(profiles, sniffed.envelope) if isinstance(profile, _Auto) \
        else profile
    if _BLANK.fullmatch(raw):  # no copy of the frame (strip() made one per frame)
        raise UnreadableMessage("empty message: the frame holds no HL7 segments")
    decided = choose_charset(sniffed, chosen, charset, default_charset)
    return Prepared(decode(raw, decided, errors), decided,
                    choose_timezone(chosen, timezone, default_timezone), chosen,
                    sniffed.envelope)


def prepare_text(text: str, *, profiles: ProfileSet = EMPTY_PROFILES,
                 profile: ProfileChoice = AUTO, timezone: str | None = None,
                 default_timezone: str = "UTC") -> Prepared:
    """``prepare`` for text that is already decoded (pasted into the console)."""
    sniffed = sniff_text(text)
    chosen = choose_profile(profiles, sniffed.envelope) if isinstance(profile, _Auto) \
        else profile
    return Prepared(text, "", choose_timezone(chosen, timezone, default_timezone), chosen,
                    sniffed.envelope)


def split_file(data: bytes) -> list[bytes]:
    """The messages of a file (``hl7gw map``, ``profiles check``), each as its own bytes.

    An ASCII-compatible file is split like ``hl7gw send`` does (at each MSH, LF and CRLF
    as CR, a UTF-8 BOM dropped); a UTF-16 file is one message, kept as it is (splitting
    its bytes on CR would cut its code units apart).
    """
    from gateway.mllp.client import split_messages

    if sniff(data[:64]).layout.startswith("utf-16"):
        return [data]
    return split_messages(data)


def with_timezone(prepared: Prepared, timezone: str) -> Prepared:
    """``prepared`` mapped in ``timezone`` (an explicit ``--timezone`` wins over all)."""
    return Prepared(prepared.text, prepared.charset, timezone, prepared.profile,
                    prepared.envelope)


def convert(prepared: Prepared, *, validate: bool = False) -> mappers.ConversionResult:
    """The FHIR Bundle for a prepared message; raises the mapper's ``MessageError``s."""
    return mappers.convert(prepared.text, default_tz=prepared.timezone,
                           profile=prepared.profile, validate=validate)


def check(prepared: Prepared) -> mappers.Header:
    """What intake checks before its ACK (``mappers.check``) on a prepared message."""
    return mappers.check(prepared.text, default_tz=prepared.timezone,
                         profile=prepared.profile)


def explain(prepared: Prepared) -> str:
    """Where each element of the Bundle came from (``mappers.explain``)."""
    return mappers.explain(prepared.text, default_tz=prepared.timezone,
                           profile=prepared.profile)


def describe(exc: BaseException) -> str:
    """One line for an error about a message: ``RequiredFieldMissing at PID-3: text``.

    Other errors give their class and first line; neither holds field values (PHI).
    """
    if isinstance(exc, MessageError):
        where = f" at {exc.location}" if exc.location else ""
        return f"{type(exc).__name__}{where}: {exc.text}"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
