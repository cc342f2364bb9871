"""What the console's pages and the admin API share: the runtime, users, audit, replays.

Both faces authenticate the same way (a bearer token, or a browser session cookie), audit
the same actions and read the spool through the same helpers here, so the JSON API and the
HTML pages cannot drift apart in who may see what.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.requests import Request

from gateway.audit import AuditLog
from gateway.config import ConsoleSettings, GatewaySettings
from gateway.console.auth import COOKIE as SESSION_COOKIE
from gateway.console.auth import NO_USERS, Principal, Session, Sessions, Users
from gateway.console.dashboard import Sampler
from gateway.console.kafka_lag import ConsumerLag
from gateway.console.mapview import MappingView, map_raw, parse_summary
from gateway.intake import Intake
from gateway.metrics import GatewayMetrics
from gateway.prepare import sender_entry
from gateway.publisher import Publisher
from gateway.replay import Actor, ReplayService
from gateway.spool import MessageFilter, MessageInfo, RejectedInfo, Spool
from gateway.trial.jobs import TrialJobs
from mappers.hl7v2.envelope import sniff
from mappers.profiles import EMPTY_PROFILES, ProfileSet

COOKIE = SESSION_COOKIE  # the browser session's cookie (set in gateway.console.auth)


class ConsoleRuntime(Protocol):
    """What the console needs from the running gateway (``GatewayService`` has it all)."""

    @property
    def settings(self) -> GatewaySettings: ...

    @property
    def spool(self) -> Spool: ...

    @property
    def metrics(self) -> GatewayMetrics: ...

    @property
    def publisher(self) -> Publisher: ...

    @property
    def intakes(self) -> Mapping[str, Intake]: ...


class Denied(Exception):
    """A request the console refuses: 400 (bad filter), 401, 403, 404 or 409, with why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Caller:
    """Who is asking, and how (a session for browsers; None for bearer tokens)."""

    user: Principal
    session: Session | None


def iso(ts: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (``...Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def message_json(info: MessageInfo) -> dict[str, Any]:
    """A spooled message's metadata for the API (summary parsed, times also as ISO)."""
    data = asdict(info)
    data["summary"] = parse_summary(info.summary)
    data["received"] = iso(info.received_at)
    data["published"] = iso(info.published_at)
    return data


def rejected_json(info: RejectedInfo) -> dict[str, Any]:
    """A refused message's metadata for the API."""
    data = asdict(info)
    data["received"] = iso(info.received_at)
    return data


def peer_of(request: Request) -> str:
    """``host:port`` of the HTTP client, for the audit log."""
    client = request.client
    return f"{client.host}:{client.port}" if client else "unknown"


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site (CSRF defence)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin.split("://", 1)[-1] == request.headers.get("host", "")
    site = request.headers.get("sec-fetch-site")
    return site in (None, "same-origin", "none")


class Console:
    """The console's state for one running gateway."""

    def __init__(self, runtime: ConsoleRuntime, settings: ConsoleSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.users = Users(settings.users, sign_in=settings.oidc is not None)
        self.sessions = Sessions(settings.session_hours, path=settings.session_file)
        self.audit = AuditLog(settings.audit_path)
        self.replays = ReplayService(runtime.spool, self.audit, wake=runtime.publisher.wake)
        self.trials = TrialJobs()  # profile trials; cancelled when the app stops
        bridge = runtime.settings.bridge
        lag = (ConsumerLag(runtime.settings.kafka, bridge.group_id, bridge.topic)
               if bridge is not None else None)
        self.sampler = Sampler(runtime.metrics, runtime.spool,
                               interval_s=settings.sample_interval_s, lag=lag)

    # -- who is asking --------------------------------------------------------------------

    def caller(self, request: Request) -> Caller | None:
        """The bearer token's user, else the session cookie's, else None."""
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                return None
            user = self.users.authenticate(token.strip())
            return Caller(user, None) if user else None
        session = self._current(self.sessions.get(request.cookies.get(COOKIE)))
        return Caller(session.user, session) if session else None

    def _current(self, session: Session | None) -> Session | None:
        """A stored session as the config allows it now: a token user still listed (with
        their role as configured now), an OIDC user only while OIDC is configured."""
        if session is None:
            return None
        if session.method == "oidc":
            return session if self.settings.oidc is not None else None
        user = self.users.named(session.user.name)
        return replace(session, user=user) if user is not None else None

    def require(self, request: Request, role: str) -> Caller:
        """The caller if they hold ``role``; Denied(401/403) otherwise."""
        caller = self.caller(request)
        if caller is None:
            if not self.users.configured:
                raise Denied(401, NO_USERS)
            if request.headers.get("authorization"):
                raise Denied(401, "unknown or malformed token: send Authorization: Bearer "
                                  "<token> with a token listed (as its SHA-256) in "
                                  "console.users")
            raise Denied(401, "authentication required: send Authorization: Bearer <token>"
                              " (or log in at /console/login)")
        if not caller.user.may(role):
            raise Denied(403, f"{caller.user.role}s may not do this; it needs the {role} role")
        return caller

    def check_write(self, request: Request, caller: Caller, csrf: str | None) -> None:
        """For a change made with a session cookie: same origin and the session's token."""
        if caller.session is None:
            return  # bearer tokens are not sent by browsers on their own: no CSRF risk
        if not same_origin(request) or csrf != caller.session.csrf:
            raise Denied(403, "refused: this form did not come from this console "
                              "(reload the page and try again)")

    async def record(self, request: Request, caller: Caller, action: str, *,
                     targets: list[int] | None = None, filter: dict[str, Any] | None = None,
                     outcome: str | None = None) -> None:
        """Append an audit entry for ``caller``; AuditError propagates (action refused)."""
        await self.audit.record(user=caller.user.name, role=caller.user.role, action=action,
                                peer=peer_of(request), targets=targets, filter=filter,
                                outcome=outcome)

    # -- profiles -------------------------------------------------------------------------

    def alerts(self) -> list[Any]:
        """The alerts firing now, most severe first, for the dashboard (the service's
        ``alerts`` engine; none without an ``alerts:`` section)."""
        engine = getattr(self.runtime, "alerts", None)
        return list(engine.firing()) if engine is not None else []

    def profile_state(self) -> tuple[ProfileSet, int | None, str | None]:
        """(live profiles, reload generation, last reload error), whatever the runtime has."""
        store = getattr(self.runtime, "profiles", None)
        if store is None:
            return EMPTY_PROFILES, None, None
        current = getattr(store, "current", None)
        profiles = current if isinstance(current, ProfileSet) else EMPTY_PROFILES
        return profiles, getattr(store, "generation", None), getattr(store, "last_error", None)

    def profiles_json(self) -> dict[str, Any]:
        """Names, matches and the last reload error, for the API and the pages."""
        profiles, generation, error = self.profile_state()
        return {"generation": generation, "last_error": error, "profiles": [
            {"name": p.name, "description": p.description, "path": p.path,
             "match": {"application": p.application, "facility": p.facility,
                       "version": p.version},
             "timezone": p.timezone, "charset": p.charset} for p in profiles.profiles]}

    # -- messages -------------------------------------------------------------------------

    async def message(self, row_id: int) -> MessageInfo:
        """One accepted message's metadata; Denied(404) when there is no such row."""
        found = await self.runtime.spool.find(MessageFilter(ids=(row_id,)), limit=1)
        if not found:
            raise Denied(404, f"no message with id {row_id} (pruned, or never stored)")
        return found[0]

    async def rejected(self, row_id: int) -> RejectedInfo:
        """One refused message's metadata; Denied(404) when there is no such row."""
        found = await self.runtime.spool.find_rejected(MessageFilter(ids=(row_id,)), limit=1)
        if not found:
            raise Denied(404, f"no rejected message with id {row_id} (pruned, or never kept)")
        return found[0]

    def map_row(self, raw: bytes, listener: str, charset: str | None = None,
                timezone: str | None = None) -> tuple[str, str, MappingView]:
        """(text, charset, mapping) of stored bytes as the gateway's worker maps them now.

        ``charset``/``timezone``: the row's (an accepted message); for a refused one, None:
        the listener's ``senders:`` entry and charset decide, as intake would have.
        """
        profiles, _, _ = self.profile_state()
        settings = self.runtime.settings
        ls = next((ls for ls in settings.listeners if ls.name == listener), None)
        if charset is None and ls is not None:
            entry = sender_entry(ls.senders, sniff(raw).envelope)
            charset = entry.charset if entry else None
            timezone = entry.default_timezone if entry else None
        return map_raw(raw, profiles=profiles, charset=charset, timezone=timezone,
                       default_charset=ls.charset if ls else "utf-8",
                       default_timezone=settings.default_timezone)

    async def body(self, request: Request, caller: Caller, row_id: int) -> dict[str, Any]:
        """An accepted message's raw text, ACK and Bundle as mapped now; audited first."""
        info = await self.message(row_id)
        stored = await self.runtime.spool.body(row_id)
        if stored is None:
            raise Denied(404, f"no message with id {row_id}")
        await self.record(request, caller, "view_body", targets=[row_id])
        text, _, view = self.map_row(stored.raw, info.listener, info.charset, info.timezone)
        return {"id": row_id, "charset": info.charset, "raw": text,
                "ack": stored.ack.decode(info.charset, "replace"), "mapping": view}

    async def rejected_body(self, request: Request, caller: Caller, row_id: int
                            ) -> dict[str, Any]:
        """A refused message's raw text and NAK; audited first."""
        info = await self.rejected(row_id)
        stored = await self.runtime.spool.rejected_body(row_id)
        if stored is None:
            raise Denied(404, f"no rejected message with id {row_id}")
        await self.record(request, caller, "view_rejected_body", targets=[row_id])
        text, charset, view = self.map_row(stored.raw, info.listener)
        return {"id": row_id, "charset": charset, "raw": text,
                "ack": stored.ack.decode("utf-8", "replace"),  # intake's NAKs are UTF-8
                "mapping": view}

    async def replay(self, request: Request, caller: Caller, flt: MessageFilter) -> list[int]:
        """Queue matching published/failed rows again (the replay service audits it)."""
        actor = Actor(caller.user.name, caller.user.role, peer_of(request))
        return await self.replays.replay(flt, actor)

    async def reprocess(self, request: Request, caller: Caller, row_id: int
                        ) -> dict[str, Any]:
        """Run a refused message through its listener's intake again; audited."""
        info = await self.rejected(row_id)
        intake = self.runtime.intakes.get(info.listener)
        if intake is None:
            raise Denied(409, f"listener {info.listener!r} no longer exists; "
                              "cannot reprocess this message")
        stored = await self.runtime.spool.rejected_body(row_id)
        if stored is None:
            raise Denied(404, f"no rejected message with id {row_id}")
        result = await intake.handle(stored.raw, peer=f"console:{caller.user.name}")
        outcome = result.outcome
        new = {"status": outcome.status, "row_id": outcome.row_id} if outcome else None
        await self.record(request, caller, "reprocess", targets=[row_id],
                          outcome=f"{result.code}" + (f" {outcome.status} row {outcome.row_id}"
                                                      if outcome else ""))
        return {"id": row_id, "ack_code": result.code, "result": new}
