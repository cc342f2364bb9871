"""Spool rows as journal records: the bytes :class:`~gateway.spool.journal.Journal` keeps.

A record carries everything SQLite's insert needs (the row, its id and receive time, the
conflict flag), so a restart after a crash indexes it exactly as the live path would
have. Its ``kind`` and ``id`` stay readable (they are the associated data when the rest is
encrypted); the other fields follow as length-prefixed strings, sealed as one blob when the
spool is encrypted (gateway/keys: AES-256-GCM, the record's id as associated data).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import SpoolError
from gateway.spool.records import Accepted, Rejected

Seal = Callable[[bytes, bytes], bytes]  # (plaintext, associated data) -> blob
Unseal = Callable[[bytes, bytes], bytes]  # (blob, associated data) -> plaintext

_HEAD = struct.Struct("<BQ")  # kind, id
_BODY = struct.Struct("<dB")  # received_at, flags
_LEN = struct.Struct("<I")
_ACCEPTED, _REJECTED = 1, 2
_CONFLICT, _TRACED = 1, 2


@dataclass(frozen=True)
class Entry:
    """A row with what SQLite's insert needs besides: its id, receive time, conflict flag."""

    row: Accepted | Rejected
    id: int
    received_at: float
    conflict: bool = False

    @property
    def table(self) -> str:
        """The spool table the row goes in."""
        return "rejected" if isinstance(self.row, Rejected) else "messages"


def associated_data(table: str, row_id: int) -> bytes:
    """What binds an encrypted value to its row: a blob moved to another row fails."""
    return f"{table}:{row_id}".encode()


def _fields(row: Accepted | Rejected) -> list[str | bytes]:
    if isinstance(row, Rejected):
        return [row.listener, row.peer, row.sender, row.control_id, row.ack_code,
                row.err_code, row.reason, row.raw, row.ack]
    return [row.listener, row.peer, row.sender, row.control_id, row.message_type,
            row.sha256, row.raw, row.ack, row.event_id, row.charset, row.timezone,
            row.traceparent or ""]


def encode(entry: Entry, seal: Seal | None = None) -> bytes:
    """The record's payload: kind and id in clear, the rest sealed when ``seal`` is given."""
    row = entry.row
    kind = _REJECTED if isinstance(row, Rejected) else _ACCEPTED
    flags = (_CONFLICT if entry.conflict else 0) | (
        _TRACED if isinstance(row, Accepted) and row.traceparent is not None else 0)
    parts = [_BODY.pack(entry.received_at, flags)]
    for value in _fields(row):
        data = value.encode() if isinstance(value, str) else value
        parts += [_LEN.pack(len(data)), data]
    body = b"".join(parts)
    head = _HEAD.pack(kind, entry.id)
    if seal is None:
        return head + b"\0" + body
    return head + b"\1" + seal(body, associated_data(entry.table, entry.id))


def is_sealed(payload: bytes) -> bool:
    """Whether a record's fields were written encrypted."""
    return payload[_HEAD.size] == 1


def decode(payload: bytes, unseal: Unseal | None = None) -> Entry:
    """The entry a payload holds. Raises SpoolError if it is sealed and no key opens it."""
    kind, row_id = _HEAD.unpack_from(payload)
    sealed, body = payload[_HEAD.size], payload[_HEAD.size + 1:]
    table = "rejected" if kind == _REJECTED else "messages"
    if sealed:
        if unseal is None:
            raise SpoolError("the journal holds encrypted records but no encryption key is "
                             "configured; set encryption: in the configuration")
        body = unseal(body, associated_data(table, row_id))
    received_at, flags = _BODY.unpack_from(body)
    offset, values = _BODY.size, []
    while offset < len(body):
        (length,) = _LEN.unpack_from(body, offset)
        offset += _LEN.size
        values.append(body[offset:offset + length])
        offset += length
    # Bodies stay bytes (any charset); the other fields were written from str.
    def text(i: int) -> str:
        return values[i].decode()

    row: Accepted | Rejected
    if kind == _REJECTED:
        row = Rejected(listener=text(0), peer=text(1), sender=text(2), control_id=text(3),
                       ack_code=text(4), err_code=text(5), reason=text(6), raw=values[7],
                       ack=values[8])
    elif kind == _ACCEPTED:
        row = Accepted(listener=text(0), peer=text(1), sender=text(2), control_id=text(3),
                       message_type=text(4), sha256=text(5), raw=values[6], ack=values[7],
                       event_id=text(8), charset=text(9), timezone=text(10),
                       traceparent=text(11) if flags & _TRACED else None)
    else:
        raise SpoolError(f"journal record of unknown kind {kind}: written by a newer hl7gw?")
    return Entry(row, row_id, received_at, bool(flags & _CONFLICT))
