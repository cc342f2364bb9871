"""Who may use the console and the admin API: bearer tokens, browser sessions, two roles.

Tokens are never stored: the config holds their SHA-256 (``hl7gw console token`` prints a
new token and its line), so a leaked config file does not leak a way in. Digests are
compared with ``hmac.compare_digest`` against every user, so the time taken says nothing
about which user, or how much of a digest, matched.

Browser sessions live in memory only: a restart logs everyone out, which is the safe
default for a console that shows patient data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.config import ConsoleUser

RANK = {"viewer": 1, "operator": 2}

NO_USERS = ("no console users are configured: create a token with "
            "`hl7gw console token NAME --role operator` and add the line it prints under "
            "console.users in the gateway's config file, then restart the gateway")


@dataclass(frozen=True)
class Principal:
    """An authenticated user and their role."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        """True when this user's role includes ``role`` (operator includes viewer)."""
        return RANK.get(self.role, 0) >= RANK[role]


def token_sha256(token: str) -> str:
    """Hex SHA-256 of a token, as written in ``console.users[].token_sha256``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Users:
    """The configured users, looked up by token."""

    def __init__(self, users: Sequence[ConsoleUser]) -> None:
        self._users = tuple(users)

    @property
    def configured(self) -> bool:
        """False when nobody may log in (the console then says how to add users)."""
        return bool(self._users)

    def authenticate(self, token: str) -> Principal | None:
        """The user whose token this is, or None; constant time in the token."""
        if not token:
            return None
        digest = token_sha256(token)
        found: Principal | None = None
        for user in self._users:  # no early exit: every digest is compared
            if hmac.compare_digest(digest, user.token_sha256) and found is None:
                found = Principal(user.name, user.role)
        return found


@dataclass(frozen=True)
class Session:
    """A browser login: who, until when, and the token forms must echo (CSRF)."""

    id: str
    user: Principal
    csrf: str
    expires_at: float


class Sessions:
    """Server-side sessions by random id; each expires ``hours`` after login."""

    def __init__(self, hours: float, clock: Callable[[], float] = time.time) -> None:
        self.lifetime_s = hours * 3600
        self._clock = clock
        self._by_id: dict[str, Session] = {}

    def create(self, user: Principal) -> Session:
        """A new session for ``user`` (expired ones are dropped on the way)."""
        now = self._clock()
        for sid in [s.id for s in self._by_id.values() if s.expires_at <= now]:
            del self._by_id[sid]
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(24),
                          now + self.lifetime_s)
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None (unknown or expired)."""
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._by_id[session_id]
            return None
        return session

    def drop(self, session_id: str | None) -> None:
        """Log a session out; unknown ids are ignored."""
        if session_id:
            self._by_id.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._by_id)
