"""The keyring: AES-256-GCM over one record at a time, under the current key or any older one.

A sealed record ("blob") is self-describing, so the spool needs no column for the key::

    offset   size  field
    0        4     b"\\x00hk1": magic b"\\x00hk" and format version b"1"
    4        1     n, the key id's length (1..64)
    5        n     the key id, ASCII [A-Za-z0-9._-]
    5+n      12    the nonce, fresh from os.urandom for every record
    17+n     ...   the ciphertext, then GCM's 16-byte tag

The associated data given to AES-GCM is the header (bytes ``0 .. 5+n``) followed by the
caller's ``aad`` (the record's id). The header is self-delimiting, so the two cannot run
into each other; binding it means the key id and the version cannot be swapped, and
binding the record id means a blob copied onto another row does not decrypt.

The magic starts with a NUL byte: clear HL7 starts with ``MSH``/``FHS``/``BHS``, an MLLP
frame with VT (0x0b), FHIR JSON with ``{``, so :func:`is_encrypted` tells rows written
before encryption was turned on from sealed ones, and a spool can be migrated in place.

Random 96-bit nonces are safe for up to 2**32 records per key (NIST SP 800-38D); rotating
(``hl7gw keys rotate``) starts a new key, and docs/encryption.md says when to.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import EncryptionError

MAGIC = b"\x00hk"
VERSION = b"1"
PREFIX = MAGIC + VERSION
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits, GCM's native nonce size
TAG_BYTES = 16
MAX_KEY_ID = 64
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def check_key_id(key_id: str) -> str:
    """``key_id`` if it can go in a blob header; ``ValueError`` saying why not otherwise."""
    if not KEY_ID.fullmatch(key_id):
        raise ValueError(f"key id {key_id!r} must be 1 to {MAX_KEY_ID} characters of "
                         "A-Z a-z 0-9 . _ -")
    return key_id


@dataclass(frozen=True, slots=True)
class DataKey:
    """One AES-256 key of the ring. ``material`` is never shown by ``repr``."""

    id: str
    material: bytes = field(repr=False)
    created: datetime | None = None  # None: not known (keys from an environment variable)

    def __post_init__(self) -> None:
        check_key_id(self.id)
        if len(self.material) != KEY_BYTES:
            raise ValueError(f"key {self.id!r} is {len(self.material)} bytes, "
                             f"not {KEY_BYTES} (AES-256)")


@dataclass(frozen=True, slots=True)
class _Header:
    key_id: str
    size: int  # bytes up to the nonce


def is_encrypted(blob: bytes) -> bool:
    """True when ``blob`` is a sealed record (any format version), False for clear bytes.

    A version this release knows is also checked for a well-formed header and a length
    that can hold a nonce and a tag, so clear bytes that happen to start with the magic
    are not taken for a record. An unknown version counts as sealed: reading it as clear
    text would be worse than the error :meth:`Keyring.decrypt` gives.
    """
    if not blob.startswith(MAGIC) or len(blob) <= len(MAGIC):
        return False
    if blob[len(MAGIC):len(PREFIX)] != VERSION:
        return blob[len(MAGIC):len(PREFIX)].isdigit()
    try:
        _parse_header(blob)
    except EncryptionError:
        return False
    return True


def _parse_header(blob: bytes) -> _Header:
    if not blob.startswith(MAGIC):
        raise EncryptionError("not an encrypted record (no hl7gw encryption header): a "
                              "clear-text row, or not a record of this spool")
    version = blob[len(MAGIC):len(PREFIX)]
    if version != VERSION:
        shown = version.decode("ascii", "replace")
        raise EncryptionError(f"encrypted record in format version {shown}, which this "
                              "hl7gw does not read (written by a newer release?): upgrade")
    if len(blob) <= len(PREFIX):
        raise EncryptionError("encrypted record is truncated (no key id)")
    n = blob[len(PREFIX)]
    start = len(PREFIX) + 1
    raw_id = blob[start:start + n]
    try:
        key_id = check_key_id(raw_id.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise EncryptionError("encrypted record has a malformed key id: the record is "
                              "damaged") from None
    if len(raw_id) != n or len(blob) < start + n + NONCE_BYTES + TAG_BYTES:
        raise EncryptionError(f"encrypted record under key {key_id!r} is truncated")
    return _Header(key_id, start + n)


def _header(key_id: str) -> bytes:
    raw = key_id.encode("ascii")
    return PREFIX + bytes([len(raw)]) + raw


_PROBE_AAD = b"hl7gw keyring reload probe"


class Keyring:
    """The keys a spool may read with, and the one it writes with.

    Immutable: keys are loaded when the gateway starts, and a reload (SIGHUP, after
    ``hl7gw keys rotate``) builds a new keyring that replaces this one whole
    (:meth:`missing_from` says whether it may).
    ``source`` says where the keys came from (``key file var/keys.json``), for messages.
    Thread-safe: each call uses its own nonce and no shared state changes.
    """

    __slots__ = ("_ciphers", "_created", "_order", "current_key_id", "source")

    current_key_id: str
    source: str

    def __init__(self, keys: Iterable[DataKey], current_key_id: str, *,
                 source: str = "keyring") -> None:
        self._ciphers: dict[str, AESGCM] = {}
        self._created: dict[str, datetime | None] = {}
        self._order: list[str] = []
        for key in keys:
            if key.id in self._ciphers:
                raise EncryptionError(f"{source}: key id {key.id!r} appears twice")
            self._ciphers[key.id] = AESGCM(key.material)
            self._created[key.id] = key.created
            self._order.append(key.id)
        if current_key_id not in self._ciphers:
            raise EncryptionError(f"{source}: the current key {current_key_id!r} is not "
                                  "among its keys")
        self.current_key_id = current_key_id
        self.source = source

    def __repr__(self) -> str:
        return (f"Keyring(current_key_id={self.current_key_id!r}, key_ids={self._order!r}, "
                f"source={self.source!r})")

    @property
    def key_ids(self) -> list[str]:
        """Every key id in the ring, in the order the provider gave them."""
        return list(self._order)

    def created(self, key_id: str) -> datetime | None:
        """When ``key_id`` was made, where the provider knows it."""
        return self._created[key_id]

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """Seal ``plaintext`` under the current key with a fresh nonce, bound to ``aad``."""
        header = _header(self.current_key_id)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current_key_id].encrypt(nonce, plaintext, header + aad)
        return header + nonce + sealed

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        """Open a record sealed under any key of the ring; ``aad`` must be the one it was
        sealed with. ``EncryptionError`` names the key id (never the data) when the key is
        not in the ring or the tag fails."""
        head = _parse_header(blob)
        cipher = self._ciphers.get(head.key_id)
        if cipher is None:
            raise EncryptionError(
                f"record encrypted under key {head.key_id!r}, which is not in the keyring "
                f"({self.source}; it holds {', '.join(self._order)}): restore the key file "
                "(or variable) from the backup that holds that key")
        nonce = blob[head.size:head.size + NONCE_BYTES]
        try:
            return cipher.decrypt(nonce, blob[head.size + NONCE_BYTES:],
                                  blob[:head.size] + aad)
        except InvalidTag:
            raise EncryptionError(
                f"record under key {head.key_id!r} failed authentication: the key material "
                f"differs from the one that sealed it, the bytes were altered, or the record "
                "was read under another record id") from None

    def missing_from(self, newer: Keyring) -> list[str]:
        """What ``newer`` lacks of this ring's keys, one line each (empty: it may replace
        this one): a key id it does not hold, or holds with other material (found by
        sealing a probe under this ring's key and opening it with ``newer``'s, so no key
        material is compared or shown). Records sealed under either could not be read."""
        problems = []
        for key_id in self._order:
            theirs = newer._ciphers.get(key_id)
            if theirs is None:
                problems.append(f"key {key_id!r} is missing")
                continue
            nonce, probe = os.urandom(NONCE_BYTES), os.urandom(16)
            sealed = self._ciphers[key_id].encrypt(nonce, probe, _PROBE_AAD)
            try:
                same = theirs.decrypt(nonce, sealed, _PROBE_AAD) == probe
            except InvalidTag:
                same = False
            if not same:
                problems.append(f"key {key_id!r} has other material")
        return problems

    def key_id_of(self, blob: bytes) -> str:
        """The id of the key ``blob`` was sealed under (``EncryptionError`` if not sealed)."""
        return _parse_header(blob).key_id

    def is_current(self, blob: bytes) -> bool:
        """True when ``blob`` is sealed under the current key (nothing to re-encrypt)."""
        return self.key_id_of(blob) == self.current_key_id
