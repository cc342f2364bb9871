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
