"""A small, real OpenID Connect provider for tests: discovery, authorize, token, JWKS.

It signs id tokens with an RSA key made when it is created, and serves them over HTTP
with a real uvicorn on a free loopback port (``async with OidcProvider(...) as p``), so
the console's sign-in runs against the same protocol a hospital's provider speaks:

- ``/authorize`` checks the client, the redirect URL, ``response_type=code`` and a PKCE
  S256 challenge, then approves the configured test user at once (no login form) and
  sends the browser back with a one-time code and the state;
- ``/token`` checks the client's secret (HTTP Basic or form), the code, the redirect URL
  and that the PKCE verifier hashes to the challenge, and answers with an id token.

``claims`` are the user's (``sub``, ``preferred_username``, ``groups``...); ``override``
changes the id token's standard claims (``aud``, ``exp``, ``nonce``...) to test refusals.
``app()`` can also be used in process through ``httpx.ASGITransport``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jwt.algorithms import RSAAlgorithm

CLIENT_ID = "hl7gw-console"
CLIENT_SECRET = "test-client-secret-42"


@dataclass(frozen=True)
class Grant:
    """A code handed out by ``/authorize``, waiting for ``/token``."""

    challenge: str
    nonce: str
    redirect_uri: str
    expires_at: float


@dataclass
class OidcProvider:
    """See the module docstring; ``url`` is set once started (or given, for in-process use)."""

    redirect_url: str
    claims: dict[str, Any]
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    url: str = "http://127.0.0.1:0"
    hostname: str = "127.0.0.1"  # in its URLs: "localhost" makes it another site than the gateway
    # True: /authorize answers with its own page that continues back by itself (as a real
    # provider's login page does); False: a plain redirect (for clients like httpx)
    approval_page: bool = False
    id_token_omits: tuple[str, ...] = ()  # claims only /userinfo tells (e.g. the roles)
    userinfo_sub: str | None = None  # /userinfo names another subject (a broken provider)
    access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    tls: tuple[Path, Path] | None = None  # (certfile, keyfile): serve https://
    override: dict[str, Any] = field(default_factory=dict)
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    kid: str = field(default_factory=lambda: secrets.token_hex(8))
    codes: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    # -- tokens ---------------------------------------------------------------------------

    def sign(self, claims: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None,
             kid: str | None = None, alg: str = "RS256") -> str:
        """A JWT over ``claims`` signed with this provider's key (or ``key``)."""
        return jwt.encode(claims, key or self.key, algorithm=alg,
                          headers={"kid": kid or self.kid})

    def id_token_claims(self, nonce: str) -> dict[str, Any]:
        """What ``/token`` signs: the standard claims, the user's, then ``override``."""
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.client_id, "iat": now, "exp": now + 300,
                  "nonce": nonce, **self.claims, **self.override}
        return {k: v for k, v in claims.items() if k not in self.id_token_omits}

    def jwks(self) -> dict[str, Any]:
        """The public key as a JWK set."""
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    # -- the HTTP face --------------------------------------------------------------------

    def app(self) -> FastAPI:
        """Discovery, authorize, token and JWKS endpoints."""
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {"issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
                    "userinfo_endpoint": f"{self.url}/userinfo",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                              "client_secret_post"]}

        @app.get("/jwks")
        async def jwks() -> dict[str, Any]:
            return self.jwks()

        @app.get("/userinfo")
        async def userinfo(request: Request) -> JSONResponse:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            claims = self.access_tokens.get(token)
            if claims is None:
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            if self.userinfo_sub is not None:
                claims = {**claims, "sub": self.userinfo_sub}
            return JSONResponse(claims)

        @app.get("/authorize", response_model=None)
        async def authorize(request: Request) -> Response:
            q = dict(request.query_params)
            self.authorize_requests.append(q)
            problem = _authorize_problem(q, self.client_id, self.redirect_url)
            if problem:
                return HTMLResponse(f"<h1>refused</h1><p>{problem}</p>", status_code=400)
            code = secrets.token_urlsafe(24)
            self.codes[code] = Grant(q["code_challenge"], q.get("nonce", ""),
                                     q["redirect_uri"], time.time() + 60)
            back = f"{q['redirect_uri']}?" + urlencode({"code": code,
                                                         "state": q.get("state", "")})
            if self.approval_page:
                name = html.escape(str(self.claims.get("preferred_username", "")))
                return HTMLResponse(
                    f'<!doctype html><meta http-equiv="refresh" content="0;url='
                    f'{html.escape(back)}"><title>Test provider</title>'
                    f"<p>Signing {name} in...</p>")
            return RedirectResponse(back, status_code=303)

        @app.post("/token")
        async def token(request: Request) -> JSONResponse:
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            self.token_requests.append(form)
            if not self._client_ok(request, form):
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.codes.pop(form.get("code", ""), None)
            if (form.get("grant_type") != "authorization_code" or grant is None
                    or grant.expires_at < time.time()
                    or form.get("redirect_uri") != grant.redirect_uri):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            if s256(form.get("code_verifier", "")) != grant.challenge:
                return JSONResponse({"error": "invalid_grant",
                                     "error_description": "PKCE verifier does not match"},
                                    status_code=400)
            access = secrets.token_urlsafe(24)
            self.access_tokens[access] = dict(self.claims)
            return JSONResponse({"access_token": access,
                                 "token_type": "Bearer", "expires_in": 300,
                                 "id_token": self.sign(self.id_token_claims(grant.nonce))})

        return app

    def _client_ok(self, request: Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            pair = base64.b64decode(header[6:]).decode()
            return pair == f"{self.client_id}:{self.client_secret}"
        return (form.get("client_id") == self.client_id
                and form.get("client_secret") == self.client_secret)

    # -- running --------------------------------------------------------------------------

    async def __aenter__(self) -> OidcProvider:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://{self.hostname}:{port}"
        cert, key = self.tls or (None, None)
        self._server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=port,
                                                     log_config=None, access_log=False,
                                                     lifespan="off", ssl_certfile=cert,
                                                     ssl_keyfile=key))
        self._task = asyncio.create_task(self._server.serve())
        deadline = time.monotonic() + 15
        while not self._server.started:
            if self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                raise TimeoutError("the test OIDC provider did not start within 15 s")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)


def s256(verifier: str) -> str:
    """The PKCE S256 challenge, computed independently of the gateway's code."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _authorize_problem(q: dict[str, str], client_id: str, redirect_url: str) -> str | None:
    if q.get("response_type") != "code":
        return "response_type must be code"
    if q.get("client_id") != client_id:
        return "unknown client"
    if q.get("redirect_uri") != redirect_url:
        return "redirect_uri is not registered for this client"
    if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
        return "PKCE with S256 is required"
    if "openid" not in q.get("scope", "").split():
        return "scope must include openid"
    return None
