"""Who may use the console and the admin API: bearer tokens, browser sessions, two roles.

Tokens are never stored: the config holds their SHA-256 (``hl7gw console token`` prints a
new token and its line), so a leaked config file does not leak a way in. Digests are
compared with ``hmac.compare_digest`` against every user, so the time taken says nothing
about which user, or how much of a digest, matched.

Browser sessions are kept in a small SQLite file (``gateway.console.session_store``), by
the hash of their cookie only, so a gateway restart does not log anyone out; they end at
logout or ``session_hours`` after login. A session made with a token is checked against
the configured users on every request: deleting a user's line (and restarting) still
takes their access away at once, and a changed role applies at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import AuditLog
from gateway.config import ConsoleUser
from gateway.console.session_store import (
    MEMORY,
    SessionStore,
    SessionStoreError,
    StoredSession,
)

log = logging.getLogger("hl7gw.console")
RANK = {"viewer": 1, "operator": 2}
COOKIE = "hl7gw_console"

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

    def __init__(self, users: Sequence[ConsoleUser], *, sign_in: bool = False) -> None:
        self._users = tuple(users)
        self._sign_in = sign_in  # an OpenID Connect provider signs people in too

    @property
    def configured(self) -> bool:
        """False when nobody may log in: no token users and no sign-in provider (the
        console then says how to add users)."""
        return bool(self._users) or self._sign_in

    @property
    def with_tokens(self) -> bool:
        """True when at least one user logs in with a token."""
        return bool(self._users)

    def named(self, name: str) -> Principal | None:
        """The token user called ``name`` with their role as configured now, or None."""
        for user in self._users:
            if user.name == name:
                return Principal(user.name, user.role)
        return None

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
    """A browser login: who, until when, how (``token``/``oidc``), and the token forms
    must echo (CSRF)."""

    id: str
    user: Principal
    csrf: str
    expires_at: float
    method: str = "token"


class Sessions:
    """Server-side sessions by random id; each expires ``hours`` after login.

    ``path``: the SQLite file they are kept in (``:memory:``: this process only).
    """

    def __init__(self, hours: float, clock: Callable[[], float] = time.time,
                 path: Path | str = MEMORY) -> None:
        self.lifetime_s = hours * 3600
        self._clock = clock
        self._store = SessionStore(path)

    def create(self, user: Principal, method: str = "token") -> Session:
        """A new session for ``user`` (expired ones are dropped on the way)."""
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(24),
                          now + self.lifetime_s, method)
        self._store.put(session.id, StoredSession(user.name, user.role, session.csrf,
                                                  method, now, session.expires_at))
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None (unknown or expired)."""
        if not session_id:
            return None
        try:
            row = self._store.get(session_id, self._clock())
        except SessionStoreError as exc:  # treated as logged out; a new login says why
            log.warning("console session file unreadable", extra={"error": str(exc)})
            return None
        if row is None:
            return None
        return Session(session_id, Principal(row.user, row.role), row.csrf, row.expires_at,
                       row.method)

    def drop(self, session_id: str | None) -> None:
        """Log a session out; unknown ids are ignored."""
        if session_id:
            self._store.delete(session_id)

    def prune(self) -> int:
        """Delete every expired session; how many went."""
        return self._store.prune(self._clock())

    def close(self) -> None:
        """Close the session file."""
        self._store.close()

    def __len__(self) -> int:
        return self._store.count()


def set_session_cookie(response: Response, request: Request, session: Session,
                       lifetime_s: float) -> None:
    """The session's cookie: HttpOnly, SameSite=Strict, ``Secure`` when served over HTTPS."""
    response.set_cookie(COOKIE, session.id, max_age=int(lifetime_s), path="/",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


async def audit_sign_in(audit: AuditLog, *, action: str, user: str, role: str, peer: str,
                        method: str, outcome: str | None = None) -> None:
    """A ``login``/``login_failed``/``logout`` line naming how (``method``: token or oidc);
    AuditError propagates, so a login that cannot be recorded does not happen."""
    record = audit.entry(user=user, role=role, action=action, peer=peer, outcome=outcome)
    record["method"] = method
    await asyncio.to_thread(audit.append, record)


async def start_session(sessions: Sessions, audit: AuditLog, user: Principal, *,
                        method: str, peer: str, replacing: str | None) -> Session:
    """A new session for ``user`` (``replacing``: the browser's old one, dropped), with its
    ``login`` audit line. A login that cannot be recorded does not happen: the session is
    dropped again and AuditError propagates; SessionStoreError when it cannot be stored."""
    # off the event loop: the session file is fsynced
    await asyncio.to_thread(sessions.drop, replacing)
    session = await asyncio.to_thread(sessions.create, user, method)
    try:
        await audit_sign_in(audit, action="login", user=user.name, role=user.role, peer=peer,
                            method=method)
    except BaseException:
        await asyncio.to_thread(sessions.drop, session.id)
        raise
    return session
