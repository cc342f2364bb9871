"""Signing in with the hospital's OpenID Connect provider (authorization code with PKCE).

``/console/login/oidc`` starts a login: fresh state, nonce and PKCE verifier kept on the
gateway (``PendingLogins``), a random id for them in a short-lived cookie, and a redirect
to the provider. ``/console/oidc/callback`` is where the provider sends the browser back:
the state must be the one this browser started, the code is exchanged with the verifier,
the id token verified (``gateway.console.oidc``) and its role claim mapped; then a
console session starts, exactly like a token login's but marked ``oidc``. A person whose
claim has no configured value is refused with a page saying what to ask for.

The flow's cookie is ``SameSite=Lax`` (the provider's redirect back is a cross-site
navigation, which must carry it); the session cookie stays ``Strict``. Because a browser
does not send a Strict cookie along a redirect chain that began on another site, the
callback answers with a small page that continues to the console from this origin,
instead of a redirect. The routes exist only when ``console.oidc`` is configured.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.console.auth import (
    COOKIE,
    Principal,
    audit_sign_in,
    set_session_cookie,
    start_session,
)
from gateway.console.core import Console, peer_of
from gateway.console.oidc import PENDING_S, OidcClient, PendingLogins, SignInError
from gateway.console.pages import _safe_next, make_environment
from gateway.console.session_store import SessionStoreError

FLOW_COOKIE = "hl7gw_oidc"
FLOW_PATH = "/console/oidc"
_PROVIDER_ERROR = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # OAuth error codes are short words


def build_router(console: Console) -> APIRouter:
    """``/console/login/oidc`` and ``/console/oidc/callback`` (none without console.oidc)."""
    router = APIRouter(prefix="/console")
    settings = console.settings.oidc
    if settings is None:
        return router
    client = OidcClient(settings)
    pending = PendingLogins()
    env = make_environment()

    def page(request: Request, status: int, *, problem: str | None = None,
             landing: str | None = None, signed_in: str | None = None,
             next_path: str = "/console") -> HTMLResponse:
        html = env.get_template("login.html").render(
            user=None, csrf="", path=request.url.path, next=next_path, oidc=settings,
            problem=problem, landing=landing, signed_in=signed_in)
        response = HTMLResponse(html, status_code=status)
        response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
        return response

    async def refused(request: Request, status: int, problem: str, *, user: str = "",
                      why: str) -> HTMLResponse:
        await audit_sign_in(console.audit, action="login_failed", user=user, role="",
                            peer=peer_of(request), method="oidc", outcome=why)
        return page(request, status, problem=problem)

    @router.get("/login/oidc", response_model=None)
    async def oidc_start(request: Request, next: str = "/console") -> Response:
        flow, login = pending.start(_safe_next(next))
        try:
            target = await client.authorization_url(login)
        except SignInError as exc:
            return page(request, exc.status, problem=exc.message)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(FLOW_COOKIE, flow, max_age=PENDING_S, path=FLOW_PATH,
                            httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")
        return response

    @router.get("/oidc/callback", response_model=None)
    async def oidc_callback(request: Request, code: str = "", state: str = "",
                            error: str = "") -> Response:
        try:
            login = pending.finish(request.cookies.get(FLOW_COOKIE), state)
        except SignInError as exc:
            return await refused(request, exc.status, exc.message, why="unknown sign-in")
        if error or not code:
            shown = error if _PROVIDER_ERROR.fullmatch(error) else "no code"
            return await refused(request, 401, f"The sign-in provider did not sign you in "
                                 f"({shown}). Try again, or log in with a token.",
                                 why="provider refused")
        try:
            identity = await client.sign_in(code, login)
        except SignInError as exc:
            return await refused(request, exc.status, exc.message, why="id token refused"
                                 if exc.status == 401 else "provider error")
        if identity.role is None:
            return await refused(
                request, 403,
                f"You are signed in at {settings.name} as {identity.name}, but none of your "
                f"{settings.roles_claim} gives a role in this console. Ask the gateway's "
                "administrator to add one of your groups to console.oidc.operator_values "
                "or viewer_values.", user=identity.name, why="no console role")
        user = Principal(identity.name, identity.role)
        try:
            session = await start_session(console.sessions, console.audit, user,
                                          method="oidc", peer=peer_of(request),
                                          replacing=request.cookies.get(COOKIE))
        except SessionStoreError as exc:
            return page(request, 503, problem=f"refused: {exc}")
        response = page(request, 200, landing=login.next, signed_in=user.name,
                        next_path=login.next)
        set_session_cookie(response, request, session, console.sessions.lifetime_s)
        return response

    return router
