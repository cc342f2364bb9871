"""Auth plugins of the bridge's HTTP target, over httpx's MockTransport."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
from pydantic import ValidationError

from connectors.bridge.auth import (
    AwsSigV4,
    HeaderAuth,
    OidcClientCredentials,
    TokenRefused,
    TokenUnavailable,
    build_auth,
)
from connectors.settings import BridgeSettings, OidcAuth

URL = "https://abc.lambda-url.eu-west-1.on.aws/events"
KEY_ID, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "sess-tok"


def settings(auth: dict[str, Any]) -> BridgeSettings:
    return BridgeSettings.model_validate({"target_url": URL, "auth": auth})


Handler = Callable[[httpx.Request], httpx.Response]


async def post(auth: httpx.Auth | None, handler: Handler, body: bytes = b'{"a":1}',
               url: str = URL) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as client:
        return await client.post(url, content=body,
                                 headers={"content-type": "application/fhir+json",
                                          "ce-id": "evt-1"})


def capture(seen: list[httpx.Request], status: int = 202) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status)
    return handle


# api key and azure function key --------------------------------------------------------

async def test_api_key_header() -> None:
    auth = build_auth(settings({"type": "api_key", "header": "x-api-key", "value": "k-123"}).auth)
    assert isinstance(auth, HeaderAuth)
    seen: list[httpx.Request] = []
    await post(auth, capture(seen))
    assert seen[0].headers["x-api-key"] == "k-123"


async def test_azure_function_key_header() -> None:
    auth = build_auth(settings({"type": "azure_function_key", "key": "az-key"}).auth)
    seen: list[httpx.Request] = []
    await post(auth, capture(seen))
    assert seen[0].headers["x-functions-key"] == "az-key"


def test_secrets_do_not_show_in_settings_repr() -> None:
    for auth in ({"type": "api_key", "value": "k-123"},
                 {"type": "azure_function_key", "key": "k-123"},
                 {"type": "aws_sigv4", "region": "eu-west-1", "access_key_id": KEY_ID,
                  "secret_access_key": "k-123", "session_token": "k-123"},
                 {"type": "oidc", "token_url": "https://idp/token", "client_id": "c",
                  "client_secret": "k-123"}):
        s = settings(auth)
        assert "k-123" not in repr(s) and "k-123" not in str(s.model_dump())


@pytest.mark.parametrize("auth", [
    {"type": "nope"},
    {"type": "api_key"},
    {"type": "aws_sigv4", "region": "eu-west-1", "access_key_id": KEY_ID},
    {"type": "oidc", "token_url": "ftp://idp/token", "client_id": "c", "client_secret": "s"},
])
def test_bad_auth_settings_are_refused(auth: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(auth)


# AWS SigV4 ----------------------------------------------------------------------------

def sigv4_auth(token: str | None = TOKEN) -> AwsSigV4:
    data = {"type": "aws_sigv4", "region": "eu-west-1", "service": "lambda",
            "access_key_id": KEY_ID, "secret_access_key": SECRET}
    if token:
        data["session_token"] = token
    auth = build_auth(settings(data).auth)
    assert isinstance(auth, AwsSigV4)
    return auth


def expected_signature(request: httpx.Request, signed: list[str], amz_date: str) -> str:
    """SigV4 recomputed from its specification, independently of botocore."""
    canonical_headers = "".join(f"{name}:{' '.join(request.headers[name].split())}\n"
                                for name in signed)
    canonical = "\n".join([request.method, request.url.path, request.url.query.decode(),
                           canonical_headers, ";".join(signed),
                           hashlib.sha256(request.content).hexdigest()])
    scope = f"{amz_date[:8]}/eu-west-1/lambda/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + SECRET).encode()
    for part in (amz_date[:8], "eu-west-1", "lambda", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def parse_authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.partition(" ")
    assert algorithm == "AWS4-HMAC-SHA256"
    return dict(part.strip().split("=", 1) for part in rest.split(","))


async def test_sigv4_authorization_header_shape_and_signature() -> None:
    seen: list[httpx.Request] = []
    await post(sigv4_auth(), capture(seen))
    request = seen[0]
    amz_date = request.headers["x-amz-date"]
    assert len(amz_date) == 16 and amz_date.endswith("Z") and amz_date[8] == "T"
    assert request.headers["x-amz-security-token"] == TOKEN
    parts = parse_authorization(request.headers["authorization"])
    assert parts["Credential"] == f"{KEY_ID}/{amz_date[:8]}/eu-west-1/lambda/aws4_request"
    signed = parts["SignedHeaders"].split(";")
    assert {"host", "x-amz-date", "content-type", "ce-id", "x-amz-security-token"} <= set(signed)
    assert parts["Signature"] == expected_signature(request, signed, amz_date)


async def test_sigv4_signature_covers_the_body() -> None:
    auth = sigv4_auth(token=None)
    seen: list[httpx.Request] = []
    await post(auth, capture(seen), body=b'{"a":1}')
    request = seen[0]
    parts = parse_authorization(request.headers["authorization"])
    signed, amz_date = parts["SignedHeaders"].split(";"), request.headers["x-amz-date"]
    assert "x-amz-security-token" not in request.headers
    assert parts["Signature"] == expected_signature(request, signed, amz_date)
    # The same headers with another body no longer match the signature.
    tampered = httpx.Request("POST", request.url, headers=request.headers, content=b'{"a":2}')
    assert parts["Signature"] != expected_signature(tampered, signed, amz_date)


# OIDC client credentials --------------------------------------------------------------

class IdP:
    """A token endpoint and a target that accepts only the newest token."""

    def __init__(self, *, token_status: int = 200, expires_in: int = 3600,
                 revoke_first: bool = False) -> None:
        self.token_status, self.expires_in = token_status, expires_in
        self.forms: list[dict[str, list[str]]] = []
        self.bearers: list[str] = []
        self.revoke_first = revoke_first

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            self.forms.append(parse_qs(request.content.decode()))
            body = {"access_token": f"tok-{len(self.forms)}", "token_type": "Bearer",
                    "expires_in": self.expires_in}
            return httpx.Response(self.token_status, content=orjson.dumps(body))
        self.bearers.append(request.headers["authorization"])
        if self.revoke_first and request.headers["authorization"] == "Bearer tok-1":
            return httpx.Response(401)
        return httpx.Response(202)


def oidc(clock: Callable[[], float] = lambda: 0.0) -> OidcClientCredentials:
    s = OidcAuth(type="oidc", token_url="https://idp.example/token", client_id="bridge",
                 client_secret="s3cret", audience="https://fn.example", scope="events.write")
    return OidcClientCredentials(s, clock=clock)


async def test_oidc_token_is_fetched_once_and_cached() -> None:
    idp, auth = IdP(), oidc()
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp), auth=auth) as client:
        answers = await asyncio.gather(*(client.post(URL, content=b"{}") for _ in range(5)))
    assert [a.status_code for a in answers] == [202] * 5
    assert idp.forms == [{"grant_type": ["client_credentials"], "client_id": ["bridge"],
                          "client_secret": ["s3cret"], "scope": ["events.write"],
                          "audience": ["https://fn.example"]}]
    assert idp.bearers == ["Bearer tok-1"] * 5


async def test_oidc_token_is_refreshed_before_expiry() -> None:
    now = [0.0]
    idp, auth = IdP(expires_in=100), oidc(clock=lambda: now[0])
    await post(auth, idp)
    now[0] = 60.0  # 100 s token, 30 s margin: still good
    await post(auth, idp)
    now[0] = 71.0  # inside the margin: a new token
    await post(auth, idp)
    assert idp.bearers == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


async def test_oidc_401_fetches_a_new_token_once() -> None:
    idp, auth = IdP(revoke_first=True), oidc()
    response = await post(auth, idp)
    assert response.status_code == 202
    assert idp.bearers == ["Bearer tok-1", "Bearer tok-2"]


@pytest.mark.parametrize(("status", "error"), [(503, TokenUnavailable), (429, TokenUnavailable),
                                               (401, TokenRefused)])
async def test_oidc_token_endpoint_failures(status: int, error: type[Exception]) -> None:
    idp = IdP(token_status=status)
    with pytest.raises(error) as caught:
        await post(oidc(), idp)
    assert "s3cret" not in str(caught.value)
    assert idp.bearers == []  # the event was not sent without a token
    assert issubclass(TokenUnavailable, httpx.TransportError)  # the bridge retries these
