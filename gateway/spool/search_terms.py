"""Search terms of a message: kind-prefixed, normalised tokens, stored only as keyed hashes.

The spool may be encrypted at rest, so what makes a message findable by a patient
identifier or name must not put that identifier or name on disk in clear. Each token is
turned into ``HMAC-SHA256(search key, "<kind>:<token>")`` cut to 12 bytes: equal tokens
give equal terms (so a query finds them), and without the key a term says nothing about
the token (a dictionary attack needs the key, which is sealed with the spool's keyring
when encryption is on). 96 bits keep accidental collisions out of reach at any spool size.

Kinds (``KINDS``): ``identifier`` (PID-3, every repetition's CX.1), ``name`` (PID-5 family
and given names, every prefix of two characters or more, so ``smi`` finds SMITH), and
``order`` (placer/filler numbers ORC-2/ORC-3/OBR-2/OBR-3 and the filler fields OBR-18 to
OBR-20, which sites use for accession numbers). Control ids (MSH-10) are searched on their
own clear column; free text by scanning bodies (gateway/spool/search.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from typing import Final, Literal

from mappers.errors import Hl7gwError
from mappers.hl7v2 import Message, parse

TermKind = Literal["identifier", "name", "order"]
KINDS: Final[tuple[TermKind, ...]] = ("identifier", "name", "order")
TERM_BYTES: Final = 12
NAME_PREFIX_MIN: Final = 2
NAME_PREFIX_MAX: Final = 24  # longer names are indexed whole and by prefixes up to this

_WORDS: Final = re.compile(r"[^\W_]+")
# (segment, field) pairs whose first component (EI.1 or the ST value) is an order number
_ORDER_FIELDS: Final = (("ORC", 2), ("ORC", 3), ("OBR", 2), ("OBR", 3), ("OBR", 18),
                        ("OBR", 19), ("OBR", 20))


def normalise_code(value: str) -> str:
    """An identifier or order number as compared: trimmed, upper case, inner spaces kept."""
    return value.strip().upper()


def name_tokens(value: str) -> list[str]:
    """A name as words compared: accents dropped, case folded, letters and digits only."""
    if not value.isascii():  # the common case skips the Unicode work
        value = unicodedata.normalize("NFKD", value)
        value = "".join(c for c in value if not unicodedata.combining(c))
    return _WORDS.findall(value.casefold())


class Hasher:
    """HMAC-SHA256 under one key, its key schedule done once (a copy per term is about a
    sixth of ``hmac.new``'s cost, which dominated indexing)."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes) -> None:
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def term(self, kind: TermKind, token: str) -> bytes:
        """The stored form of one token: its keyed hash, kind-prefixed."""
        h = self._base.copy()
        h.update(f"{kind}:{token}".encode())
        return h.digest()[:TERM_BYTES]


def term(key: bytes, kind: TermKind, token: str) -> bytes:
    """The stored form of one token: its keyed hash, kind-prefixed."""
    return Hasher(key).term(kind, token)


def _name_parts(message: Message) -> Iterable[str]:
    for pid in message.get_all_view("PID"):
        for rep in pid.values(5):
            # XPN.1 is FN, whose first subcomponent is the surname; XPN.2 the given name
            yield rep.subcomponent(1, 1) or rep.component(1)
            yield rep.component(2)
            yield rep.component(3)  # second and further given names


def tokens(message: Message) -> set[tuple[TermKind, str]]:
    """Every (kind, token) a message is findable by."""
    found: set[tuple[TermKind, str]] = set()
    for pid in message.get_all_view("PID"):
        for rep in pid.values(3):
            value = normalise_code(rep.component(1))
            if value:
                found.add(("identifier", value))
    for part in _name_parts(message):
        for word in name_tokens(part):
            found.add(("name", word))
            for end in range(NAME_PREFIX_MIN, min(len(word), NAME_PREFIX_MAX + 1)):
                found.add(("name", word[:end]))
    for segment_id, number in _ORDER_FIELDS:
        for segment in message.get_all_view(segment_id):
            for rep in segment.values(number):
                value = normalise_code(rep.component(1))
                if value:
                    found.add(("order", value))
    return found


def message_terms(key: bytes | Hasher, raw: bytes, charset: str = "utf-8") -> set[bytes]:
    """The terms of one stored message; none for one the tokenizer cannot read."""
    hasher = key if isinstance(key, Hasher) else Hasher(key)
    try:
        text = raw.decode(charset, errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    try:
        message = parse(text)
    except Hl7gwError:
        return set()
    return {hasher.term(kind, token) for kind, token in tokens(message)}


def query_terms(key: bytes, kind: TermKind, query: str) -> list[bytes]:
    """The terms a query needs, all of them (AND): one per word for names (each word a
    prefix of a name part), the whole value for identifiers and order numbers."""
    if kind == "name":
        words = [w[:NAME_PREFIX_MAX] for w in name_tokens(query)]
        return [term(key, "name", w) for w in dict.fromkeys(words)]
    value = normalise_code(query)
    return [term(key, kind, value)] if value else []
