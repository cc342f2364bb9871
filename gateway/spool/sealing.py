"""Column values sealed at rest: what the spool keeps of a message's content, encrypted.

With ``encryption:`` configured, message bodies and ACKs (``messages``, ``rejected``) and
the outbound queue's results, messages and ACKs are sealed with the keyring's current key
(AES-256-GCM, gateway/keys), each bound to its place by associated data naming the table,
the row and the column: a blob copied into another row or column does not open. What the
console filters on (sender, type, control id, times, status) stays in clear, and so do
the mapping summary (field paths and issue codes, never values) and the patient key (the
deterministic Patient id, the Kafka key, not an identifier from the message).

Opening passes clear values through: a spool written before encryption was turned on is
readable as it is, and ``hl7gw keys rewrap`` seals its old rows in place.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from gateway.errors import EncryptionError, SpoolError

if TYPE_CHECKING:
    from gateway.keys.keyring import Keyring


def _is_encrypted(blob: bytes) -> bool:
    from gateway.keys.keyring import is_encrypted
    return is_encrypted(blob)


class Sealer:
    """Seals and opens column values; without a keyring it stores and reads them clear."""

    def __init__(self, keyring: Keyring | None = None) -> None:
        self.keyring = keyring

    @property
    def enabled(self) -> bool:
        """Whether new values are sealed."""
        return self.keyring is not None

    def seal(self, value: bytes, place: str) -> bytes:
        """``value`` as stored at ``place`` (``"messages:12:raw"``)."""
        if self.keyring is None:
            return value
        return self.keyring.encrypt(value, place.encode())

    def open(self, value: bytes, place: str) -> bytes:
        """The value stored at ``place``; clear values as they are. Raises SpoolError."""
        if not _is_encrypted(value):
            return value
        if self.keyring is None:
            raise SpoolError("the spool holds encrypted records but no key is configured: "
                             "add the encryption: section (docs/encryption.md)")
        try:
            return self.keyring.decrypt(value, place.encode())
        except EncryptionError as exc:
            raise SpoolError(f"spool: cannot decrypt {place.rsplit(':', 1)[0]}: {exc}") from exc

    def replace(self, keyring: Keyring) -> None:
        """Seal with ``keyring`` from now on (a reload after ``hl7gw keys rotate``).

        Refused (``EncryptionError``, the sealer unchanged) when sealing was off at start
        (turning it on takes a restart: the spool and journal are checked then) or when
        ``keyring`` lacks a key of the current ring or holds one with other material:
        records sealed under it would become unreadable. One assignment: a thread sealing
        at that moment uses the old ring or the new one, and both open everything.
        """
        if self.keyring is None:
            raise EncryptionError("encryption was off when the gateway started: restart it "
                                  "to turn encryption on (docs/encryption.md)")
        problems = self.keyring.missing_from(keyring)
        if problems:
            raise EncryptionError(
                f"{keyring.source} cannot replace the keys in use: {'; '.join(problems)}. "
                "Records sealed under them would become unreadable; restore the key file "
                "(or variable) that holds them, then reload again")
        self.keyring = keyring

    def needs_rewrap(self, value: bytes) -> bool:
        """Whether ``value`` is clear or under an older key than the current one."""
        if self.keyring is None:
            return False
        return not _is_encrypted(value) or not self.keyring.is_current(value)


    def check(self, conn: sqlite3.Connection, name: str) -> None:
        """Refuse to start on a spool whose newest sealed values the keys cannot open (or
        that holds sealed values and no key is configured): better than failing on the
        first read, or accepting messages that could not be published."""
        for table, columns in (("messages", "id, raw"), ("rejected", "id, raw"),
                               ("outbound", "destination, event_id, message")):
            row = conn.execute(f"SELECT {columns} FROM {table} ORDER BY id DESC LIMIT 1"
                               ).fetchone()
            if row is None:
                continue
            place = (f"outbound:{row[0]}:{row[1]}:message" if table == "outbound"
                     else f"{table}:{row[0]}:raw")
            try:
                self.open(bytes(row[-1]), place)
            except SpoolError as exc:
                raise SpoolError(f"spool {name}: the configured key cannot read it ({exc})"
                                 ) from exc


CLEAR = Sealer()
