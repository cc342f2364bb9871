"""The OpenID Connect relying party: discovery, PKCE, the code exchange, id token checks.

The console signs people in with the authorization code flow and PKCE (S256), with a
``state`` (this browser started this login) and a ``nonce`` (this id token was made for
this login). Endpoints and signing keys come from the provider's discovery document and
JWKS, fetched with httpx (``ca_file`` for a hospital's own CA) and cached; an unknown key
id fetches the JWKS again once, so a key rotation at the provider needs no restart.

The id token is verified with PyJWT: signature (asymmetric algorithms only, those the
provider announces), issuer, audience (and ``azp`` when there are several), expiry with
a minute's leeway for clocks, and the nonce. Its role claim is mapped to ``operator`` or
``viewer``; a person with neither is refused. Nothing here logs claims or tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from gateway.errors import GatewayError
from gateway.oidc_settings import OidcSettings

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")
LEEWAY_S = 60  # clocks of the gateway and the provider may differ this much
PENDING_S = 600  # a login must come back from the provider within ten minutes
MAX_PENDING = 10_000  # logins started and not finished, kept at most (oldest go first)
CACHE_S = 3600  # discovery document and JWKS


class SignInError(GatewayError):
    """A sign-in that cannot go on; ``status`` is the HTTP status of the page that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def code_challenge(verifier: str) -> str:
    """The S256 PKCE challenge of ``verifier`` (RFC 7636 §4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True)
class Pending:
    """A login sent to the provider and not back yet."""

    state: str
    nonce: str
    verifier: str  # PKCE: only the token request shows it, the browser never sees it
    next: str
    expires_at: float


class PendingLogins:
    """Logins in flight, by a random id kept in the browser's cookie; each used once."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_id: OrderedDict[str, Pending] = OrderedDict()

    def start(self, next_path: str) -> tuple[str, Pending]:
        """(cookie value, pending login) with fresh state, nonce and PKCE verifier."""
        now = self._clock()
        while self._by_id and (len(self._by_id) >= MAX_PENDING
                               or next(iter(self._by_id.values())).expires_at <= now):
            self._by_id.popitem(last=False)
        flow = secrets.token_urlsafe(32)
        pending = Pending(secrets.token_urlsafe(32), secrets.token_urlsafe(32),
                          secrets.token_urlsafe(64), next_path, now + PENDING_S)
        self._by_id[flow] = pending
        return flow, pending

    def finish(self, flow: str | None, state: str | None) -> Pending:
        """The pending login for this browser and ``state``; SignInError otherwise."""
        pending = self._by_id.pop(flow, None) if flow else None
        if pending is None or pending.expires_at <= self._clock():
            raise SignInError(400, "this sign-in was not started in this browser, or took "
                                   "longer than ten minutes: start again from the login page")
        if not state or not hmac.compare_digest(state, pending.state):
            raise SignInError(400, "the sign-in answer does not belong to the sign-in this "
                                   "browser started (state mismatch): start again from the "
                                   "login page")
        return pending

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass(frozen=True)
class Provider:
    """What the discovery document says (the parts the console uses)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    post_secret: bool  # the provider takes the client secret only in the form body
    userinfo_endpoint: str | None = None


@dataclass(frozen=True)
class Identity:
    """Who signed in: a user name for the console and audit, and the mapped role."""

    name: str
    role: str | None  # None: no configured value in the roles claim


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at a dotted path (``realm_access.roles``), or None. A claim whose own
    name has a dot (``https://example.org/roles``) is found whole first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def role_of(claims: Mapping[str, Any], settings: OidcSettings) -> str | None:
    """``operator``, ``viewer`` or None, from the values of ``settings.roles_claim``."""
    found = claim_at(claims, settings.roles_claim)
    values = {found} if isinstance(found, str) else (
        {v for v in found if isinstance(v, str)} if isinstance(found, list) else set())
    if values & set(settings.operator_values):
        return "operator"
    if values & set(settings.viewer_values):
        return "viewer"
    return None


def name_of(claims: Mapping[str, Any], settings: OidcSettings) -> str:
    """The user name shown and audited: ``username_claim``, else email, else sub."""
    for key in (settings.username_claim, "email", "sub"):
        value = claim_at(claims, key)
        if isinstance(value, str) and value:
            return value
    return "unknown"


class OidcClient:
    """The console's client of one provider; discovery and keys cached for an hour."""

    def __init__(self, settings: OidcSettings, clock: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._clock = clock
        self._transport = transport  # None: the network (tests pass an app's transport)
        self._provider: tuple[float, Provider] | None = None
        self._keys: tuple[float, jwt.PyJWKSet] | None = None

    def _http(self) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = True
        if self.settings.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.settings.ca_file))
        return httpx.AsyncClient(verify=verify, timeout=self.settings.timeout_s,
                                 follow_redirects=False, transport=self._transport)

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http() as http:
                answer = await http.get(url, headers={"Accept": "application/json"})
            answer.raise_for_status()
            data = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInError(502, f"cannot read the sign-in provider's {what} at {url} "
                                   f"({type(exc).__name__}): check console.oidc.issuer, "
                                   "the network and console.oidc.ca_file") from exc
        if not isinstance(data, dict):
            raise SignInError(502, f"the sign-in provider's {what} at {url} is not a "
                                   "JSON object")
        return data

    async def provider(self) -> Provider:
        """The provider's endpoints (discovery document, cached)."""
        now = self._clock()
        if self._provider is not None and self._provider[0] > now:
            return self._provider[1]
        issuer = self.settings.issuer
        doc = await self._get_json(f"{issuer}/.well-known/openid-configuration",
                                   "discovery document")
        if str(doc.get("issuer", "")).rstrip("/") != issuer:
            raise SignInError(502, f"the discovery document names another issuer than "
                                   f"console.oidc.issuer ({issuer}): set it to the issuer "
                                   "the provider names")
        try:
            algs = tuple(a for a in doc.get("id_token_signing_alg_values_supported",
                                            ["RS256"]) if a in ASYMMETRIC)
            methods = doc.get("token_endpoint_auth_methods_supported",
                              ["client_secret_basic"])
            provider = Provider(issuer, str(doc["authorization_endpoint"]),
                                str(doc["token_endpoint"]), str(doc["jwks_uri"]),
                                algs or ("RS256",),
                                "client_secret_post" in methods
                                and "client_secret_basic" not in methods,
                                str(doc["userinfo_endpoint"]) if doc.get("userinfo_endpoint")
                                else None)
        except (KeyError, TypeError) as exc:
            raise SignInError(502, f"the provider's discovery document lacks {exc}") from exc
        self._provider = (now + CACHE_S, provider)
        return provider

    async def authorization_url(self, pending: Pending) -> str:
        """Where to send the browser to sign in."""
        provider = await self.provider()
        query = urlencode({
            "response_type": "code", "client_id": self.settings.client_id,
            "redirect_uri": self.settings.redirect_url,
            "scope": " ".join(self.settings.scopes), "state": pending.state,
            "nonce": pending.nonce, "code_challenge": code_challenge(pending.verifier),
            "code_challenge_method": "S256"})
        joiner = "&" if "?" in provider.authorization_endpoint else "?"
        return f"{provider.authorization_endpoint}{joiner}{query}"

    async def sign_in(self, code: str, pending: Pending) -> Identity:
        """Exchange the code (with the PKCE verifier), verify the id token, map the role."""
        provider = await self.provider()
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": self.settings.redirect_url, "code_verifier": pending.verifier,
                "client_id": self.settings.client_id}
        extra: dict[str, Any] = {}
        secret = self.settings.client_secret
        if secret is not None and provider.post_secret:
            form["client_secret"] = secret.get_secret_value()
        elif secret is not None:
            extra["auth"] = httpx.BasicAuth(self.settings.client_id, secret.get_secret_value())
        try:
            async with self._http() as http:
                answer = await http.post(provider.token_endpoint, data=form,
                                         headers={"Accept": "application/json"}, **extra)
            tokens = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInError(502, "the sign-in provider's token endpoint did not answer "
                                   f"({type(exc).__name__}): try again") from exc
        if answer.status_code != 200 or not isinstance(tokens, dict):
            error = tokens.get("error", answer.status_code) if isinstance(tokens, dict) else (
                answer.status_code)
            raise SignInError(502, f"the sign-in provider refused the code ({error}): "
                                   "start again; if it keeps failing, check "
                                   "console.oidc.client_id, client_secret and redirect_url")
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError(502, "the sign-in provider sent no id token: check that "
                                   "console.oidc.scopes includes openid")
        claims = await self.verify(id_token, pending.nonce)
        access = tokens.get("access_token")
        if (claim_at(claims, self.settings.roles_claim) is None and isinstance(access, str)
                and provider.userinfo_endpoint is not None):
            # Some providers (Keycloak's realm roles, by default) put roles in the access
            # token and the userinfo answer only: ask there, for the same subject.
            claims = {**await self._userinfo(provider.userinfo_endpoint, access,
                                             claims["sub"]), **claims}
        return Identity(name_of(claims, self.settings), role_of(claims, self.settings))

    async def _userinfo(self, url: str, access_token: str, subject: Any) -> dict[str, Any]:
        """The userinfo claims, if they are about ``subject``; none when they are not."""
        try:
            async with self._http() as http:
                answer = await http.get(url, headers={"Authorization": f"Bearer {access_token}",
                                                      "Accept": "application/json"})
            answer.raise_for_status()
            info = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInError(502, "the sign-in provider's userinfo endpoint did not answer "
                                   f"({type(exc).__name__}): try again") from exc
        if not isinstance(info, dict) or info.get("sub") != subject:
            return {}  # another subject's answer must not decide this one's role
        return info

    async def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The id token's claims, once signature, issuer, audience, expiry and nonce hold."""
        provider = await self.provider()
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise _refused("it is not a signed JWT") from exc
        alg = header.get("alg")
        if alg not in provider.algorithms:
            raise _refused(f"it is signed with {alg!r}, not one of {list(provider.algorithms)}")
        key = await self._key(header.get("kid"))
        try:
            claims = jwt.decode(id_token, key, algorithms=[alg],
                                audience=self.settings.client_id, issuer=provider.issuer,
                                leeway=LEEWAY_S,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError as exc:
            raise _refused("it has expired (check the gateway's clock)") from exc
        except jwt.InvalidAudienceError as exc:
            raise _refused("it was issued for another client than "
                           "console.oidc.client_id") from exc
        except jwt.InvalidIssuerError as exc:
            raise _refused("it comes from another issuer") from exc
        except jwt.PyJWTError as exc:
            raise _refused(f"{type(exc).__name__}") from exc
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got, nonce):
            raise _refused("its nonce is not this sign-in's (replayed or mixed up)")
        audience = claims.get("aud")
        if isinstance(audience, list) and len(audience) > 1 and (
                claims.get("azp") != self.settings.client_id):
            raise _refused("it names several audiences and its azp is not this console")
        return claims

    async def _key(self, kid: Any) -> jwt.PyJWK:
        for refresh in (False, True):
            keys = await self._jwks(refresh)
            usable = [k for k in keys.keys if k.public_key_use in (None, "sig")]
            if kid is None and len(usable) == 1:
                return usable[0]
            for key in usable:
                if key.key_id == kid:
                    return key
        raise _refused("it is signed with a key the provider's JWKS does not list")

    async def _jwks(self, refresh: bool) -> jwt.PyJWKSet:
        now = self._clock()
        if not refresh and self._keys is not None and self._keys[0] > now:
            return self._keys[1]
        provider = await self.provider()
        data = await self._get_json(provider.jwks_uri, "signing keys (JWKS)")
        try:
            keys = jwt.PyJWKSet.from_dict(data)
        except jwt.PyJWTError as exc:
            raise SignInError(502, f"the provider's JWKS has no usable key "
                                   f"({type(exc).__name__})") from exc
        self._keys = (now + CACHE_S, keys)
        return keys


def _refused(why: str) -> SignInError:
    return SignInError(401, f"the sign-in provider's id token was refused: {why}; "
                            "start again from the login page")
