"""Authentication plugins for the bridge's HTTP target, as ``httpx.Auth`` flows.

One plugin per ``BridgeSettings.auth`` type: a static API key header, an Azure Functions
key, AWS SigV4 (botocore signs the method, URL, headers and the body's SHA-256), and an
OAuth 2.0 client-credentials bearer token (OIDC), fetched through the same client and
cached until shortly before it expires. Secrets stay ``SecretStr`` until the moment they
go on the wire, and no error message here repeats a secret or a response body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import httpx
import orjson
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from botocore.session import get_session  # type: ignore[import-untyped]

from connectors.errors import ConnectorError
from connectors.settings import (
    ApiKeyAuth,
    AuthSettings,
    AwsSigV4Auth,
    AzureFunctionKeyAuth,
    OidcAuth,
)

AZURE_KEY_HEADER = "x-functions-key"


class TokenUnavailable(httpx.TransportError):
    """The token endpoint failed in a way worth retrying (5xx, 429, bad answer)."""


class TokenRefused(httpx.HTTPError):
    """The token endpoint refused the client's credentials (4xx): retrying will not help."""


class HeaderAuth(httpx.Auth):
    """Sets one header to a secret value (API keys, Azure function keys)."""

    def __init__(self, header: str, value: Any) -> None:
        self._header = header
        self._value = value  # a SecretStr, unwrapped only on the request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = self._value.get_secret_value()
        yield request


class AwsSigV4(httpx.Auth):
    """Signs each request with AWS Signature Version 4 (botocore's ``SigV4Auth``)."""

    requires_request_body = True  # the signature covers the payload hash

    def __init__(self, settings: AwsSigV4Auth, *, credentials: Any = None) -> None:
        self._region = settings.region
        self._service = settings.service
        if credentials is None:
            credentials = _credentials(settings)
        self._credentials = credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for name, value in self.signed_headers(request).items():
            request.headers[name] = value
        yield request

    def signed_headers(self, request: httpx.Request) -> dict[str, str]:
        """The headers SigV4 adds to ``request``: Authorization, X-Amz-Date, maybe a token."""
        frozen = self._credentials.get_frozen_credentials()
        aws = AWSRequest(method=request.method, url=str(request.url), data=request.content,
                         headers={k: v for k, v in request.headers.items()
                                  if k.lower() != "authorization"})
        SigV4Auth(frozen, self._service, self._region).add_auth(aws)
        added = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")
        return {name: str(aws.headers[name]) for name in added if name in aws.headers}


def _credentials(settings: AwsSigV4Auth) -> Any:
    if settings.access_key_id is not None and settings.secret_access_key is not None:
        token = settings.session_token.get_secret_value() if settings.session_token else None
        return Credentials(settings.access_key_id,
                           settings.secret_access_key.get_secret_value(), token)
    found = get_session().get_credentials()
    if found is None:
        raise ConnectorError("aws_sigv4 auth: no AWS credentials in the default chain "
                             "(environment, shared files, container or instance role)")
    return found


class OidcClientCredentials(httpx.Auth):
    """A bearer token from an OAuth 2.0 token endpoint (client-credentials grant).

    The token is fetched through the client that sends the event, cached until
    ``refresh_margin_s`` before it expires, and fetched once more if the target answers 401.
    """

    def __init__(self, settings: OidcAuth, *, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._settings = settings
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock: asyncio.Lock | None = None
        self.fetches = 0  # how many tokens were fetched (for metrics and tests)

    def sync_auth_flow(self, request: httpx.Request
                       ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("OIDC auth is for httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request
                              ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        rejected: str | None = None
        for _ in range(2):
            if self._stale() or self._token == rejected:
                async with self._lock:  # one fetch for all the partitions waiting
                    if self._stale() or self._token == rejected:
                        answer = yield self._token_request()
                        await answer.aread()
                        self._store(answer)
            sent = self._token
            request.headers["Authorization"] = f"Bearer {sent}"
            response = yield request
            if response.status_code != 401:
                return
            rejected = sent  # revoked or rotated early: fetch a new one, send once more

    def _stale(self) -> bool:
        return self._token is None or self._clock() >= self._expires_at

    def _token_request(self) -> httpx.Request:
        s = self._settings
        form = {"grant_type": "client_credentials", "client_id": s.client_id,
                "client_secret": s.client_secret.get_secret_value()}
        if s.scope:
            form["scope"] = s.scope
        if s.audience:
            form["audience"] = s.audience
        return httpx.Request("POST", s.token_url, data=form,
                             headers={"accept": "application/json"})

    def _store(self, answer: httpx.Response) -> None:
        status = answer.status_code
        if status == 429 or status >= 500:
            raise TokenUnavailable(f"token endpoint answered HTTP {status}")
        if not 200 <= status <= 299:
            raise TokenRefused(f"token endpoint refused the client credentials: HTTP {status}")
        try:
            doc = orjson.loads(answer.content)
            token = doc["access_token"]
            lifetime = float(doc.get("expires_in", 300))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise TokenUnavailable("token endpoint answer has no usable access_token") from exc
        if not isinstance(token, str) or not token:
            raise TokenUnavailable("token endpoint answer has no usable access_token")
        self._token = token
        self._expires_at = self._clock() + max(lifetime - self._settings.refresh_margin_s, 0.0)
        self.fetches += 1


def build_auth(settings: AuthSettings | None) -> httpx.Auth | None:
    """The ``httpx.Auth`` plugin for a bridge's ``auth`` settings (``None``: no auth)."""
    if settings is None:
        return None
    if isinstance(settings, ApiKeyAuth):
        return HeaderAuth(settings.header, settings.value)
    if isinstance(settings, AzureFunctionKeyAuth):
        return HeaderAuth(AZURE_KEY_HEADER, settings.key)
    if isinstance(settings, AwsSigV4Auth):
        return AwsSigV4(settings)
    return OidcClientCredentials(settings)
