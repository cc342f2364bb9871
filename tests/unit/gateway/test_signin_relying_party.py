"""The OpenID Connect relying party: PKCE, state and nonce, id token checks, role mapping.

The provider is the test provider of ``tests/support/oidc_provider.py``, called in process
through ``httpx.ASGITransport`` (the integration test runs it over real HTTP).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from gateway.config import load_settings
from gateway.console.oidc import (
    OidcClient,
    Pending,
    PendingLogins,
    SignInError,
    claim_at,
    code_challenge,
    name_of,
    role_of,
)
from gateway.errors import ConfigError
from gateway.oidc_settings import OidcSettings
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, s256

ISSUER = "http://127.0.0.1:9"  # never connected to: requests go through the ASGI transport
REDIRECT = "http://127.0.0.1:8080/console/oidc/callback"
USER = {"sub": "u-1", "preferred_username": "dr.ada", "email": "ada@hospital.example",
        "realm_access": {"roles": ["hl7-operators", "staff"]}, "groups": ["staff"]}


def settings(**changes: Any) -> OidcSettings:
    base: dict[str, Any] = {"name": "Hospital SSO", "issuer": ISSUER, "client_id": CLIENT_ID,
                            "client_secret": CLIENT_SECRET, "redirect_url": REDIRECT,
                            "roles_claim": "realm_access.roles",
                            "operator_values": ["hl7-operators"], "viewer_values": ["staff"]}
    return OidcSettings.model_validate(base | changes)


def provider(**changes: Any) -> OidcProvider:
    given: dict[str, Any] = {"claims": dict(USER), "url": ISSUER} | changes
    return OidcProvider(redirect_url=REDIRECT, **given)


def client_for(idp: OidcProvider, cfg: OidcSettings | None = None) -> OidcClient:
    return OidcClient(cfg or settings(), transport=httpx.ASGITransport(idp.app()))


async def authorize(idp: OidcProvider, url: str) -> str:
    """Follow the authorization URL at the provider; the code it sends back."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(idp.app())) as http:
        answer = await http.get(url)
    assert answer.status_code == 303, answer.text
    return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]


def pending(nonce: str = "n-1") -> Pending:
    return Pending("st", nonce, "v" * 64, "/console", time.time() + 600)


# -- PKCE, state, nonce -------------------------------------------------------------------

def test_pkce_challenge_is_the_rfc_7636_example() -> None:
    # RFC 7636, appendix B
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert code_challenge(verifier) == s256(verifier)


def test_each_login_gets_fresh_state_nonce_and_a_long_verifier() -> None:
    logins = PendingLogins()
    (f1, a), (f2, b) = logins.start("/console"), logins.start("/console/messages")
    assert len({f1, f2, a.state, b.state, a.nonce, b.nonce}) == 6
    assert 43 <= len(a.verifier) <= 128 and a.verifier != b.verifier
    assert b.next == "/console/messages"


def test_a_pending_login_is_used_once_and_needs_its_own_state() -> None:
    logins = PendingLogins()
    flow, login = logins.start("/console")
    with pytest.raises(SignInError, match="state mismatch") as wrong:
        logins.finish(flow, "not-the-state")
    assert wrong.value.status == 400
    flow, login = logins.start("/console")
    assert logins.finish(flow, login.state) == login
    with pytest.raises(SignInError, match="not started in this browser"):
        logins.finish(flow, login.state)  # a second use of the same answer
    with pytest.raises(SignInError):
        logins.finish(None, login.state)  # no flow cookie: another browser


def test_a_pending_login_expires_after_ten_minutes() -> None:
    now = [1000.0]
    logins = PendingLogins(clock=lambda: now[0])
    flow, login = logins.start("/console")
    now[0] += 601
    with pytest.raises(SignInError, match="ten minutes"):
        logins.finish(flow, login.state)


# -- role mapping -------------------------------------------------------------------------

def test_roles_come_from_a_nested_claim_and_operator_wins() -> None:
    cfg = settings()
    assert claim_at(USER, "realm_access.roles") == ["hl7-operators", "staff"]
    assert role_of(USER, cfg) == "operator"
    assert role_of({"realm_access": {"roles": ["staff"]}}, cfg) == "viewer"
    assert role_of({"realm_access": {"roles": ["visitors"]}}, cfg) is None
    assert role_of({"realm_access": "hl7-operators"}, cfg) is None  # not a mapping
    assert role_of({}, cfg) is None


def test_a_flat_claim_a_single_string_and_a_claim_named_with_dots() -> None:
    assert role_of({"groups": "staff"}, settings(roles_claim="groups")) == "viewer"
    cfg = settings(roles_claim="https://hospital.example/roles")
    assert role_of({"https://hospital.example/roles": ["hl7-operators"]}, cfg) == "operator"


def test_user_name_falls_back_to_email_then_sub() -> None:
    cfg = settings()
    assert name_of(USER, cfg) == "dr.ada"
    assert name_of({"email": "e@x", "sub": "s"}, cfg) == "e@x"
    assert name_of({"sub": "s"}, cfg) == "s"


def test_settings_refuse_what_could_never_work() -> None:
    with pytest.raises(ValidationError, match="operator_values and/or viewer_values"):
        settings(operator_values=[], viewer_values=[])
    with pytest.raises(ValidationError, match="must use https"):
        settings(issuer="http://login.hospital.example")
    with pytest.raises(ValidationError, match="/console/oidc/callback"):
        settings(redirect_url="https://gw.example/callback")
    with pytest.raises(ValidationError, match="openid"):
        settings(scopes=["profile"])
    assert settings(issuer="https://login.example/realms/x/").issuer == (
        "https://login.example/realms/x")


# -- the code flow and the id token -------------------------------------------------------

async def test_code_flow_with_pkce_gives_the_mapped_identity() -> None:
    idp = provider()
    client = client_for(idp)
    _, login = PendingLogins().start("/console")
    url = await client.authorization_url(login)
    sent = parse_qs(urlsplit(url).query)
    assert sent["code_challenge_method"] == ["S256"]
    assert sent["code_challenge"] == [s256(login.verifier)]
    assert sent["state"] == [login.state] and sent["nonce"] == [login.nonce]
    assert "code_verifier" not in sent  # only the token request carries the verifier
    identity = await client.sign_in(await authorize(idp, url), login)
    assert (identity.name, identity.role) == ("dr.ada", "operator")
    assert idp.token_requests[-1]["code_verifier"] == login.verifier


async def test_a_wrong_pkce_verifier_is_refused_by_the_provider() -> None:
    idp = provider()
    client = client_for(idp)
    _, login = PendingLogins().start("/console")
    code = await authorize(idp, await client.authorization_url(login))
    forged = Pending(login.state, login.nonce, "x" * 64, "/console", login.expires_at)
    with pytest.raises(SignInError, match="refused the code") as refused:
        await client.sign_in(code, forged)
    assert refused.value.status == 502


async def test_a_user_without_a_mapped_value_gets_no_role() -> None:
    idp = provider(claims={"sub": "u-2", "preferred_username": "visitor",
                           "realm_access": {"roles": ["visitors"]}})
    client = client_for(idp)
    _, login = PendingLogins().start("/console")
    identity = await client.sign_in(await authorize(idp, await client.authorization_url(login)),
                                    login)
    assert (identity.name, identity.role) == ("visitor", None)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": CLIENT_ID, "sub": "u-1", "iat": now, "exp": now + 300,
            "nonce": "n-1"} | changes


async def test_a_good_id_token_is_accepted() -> None:
    idp = provider()
    got = await client_for(idp).verify(idp.sign(claims()), "n-1")
    assert got["sub"] == "u-1"


@pytest.mark.parametrize(("changes", "why"), [
    ({"nonce": "n-other"}, "nonce"),
    ({"aud": "another-client"}, "another client"),
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"iss": "http://127.0.0.1:10"}, "another issuer"),
    ({"aud": [CLIENT_ID, "other"], "azp": "other"}, "azp"),
])
async def test_id_tokens_are_refused(changes: dict[str, Any], why: str) -> None:
    idp = provider()
    with pytest.raises(SignInError, match=why) as refused:
        await client_for(idp).verify(idp.sign(claims(**changes)), "n-1")
    assert refused.value.status == 401


async def test_missing_nonce_and_missing_expiry_are_refused() -> None:
    idp = provider()
    no_nonce = {k: v for k, v in claims().items() if k != "nonce"}
    with pytest.raises(SignInError, match="nonce"):
        await client_for(idp).verify(idp.sign(no_nonce), "n-1")
    no_exp = {k: v for k, v in claims().items() if k != "exp"}
    with pytest.raises(SignInError, match="MissingRequiredClaim"):
        await client_for(idp).verify(idp.sign(no_exp), "n-1")


async def test_a_token_signed_with_another_key_or_hmac_is_refused() -> None:
    idp = provider()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(SignInError, match="InvalidSignature"):
        await client_for(idp).verify(idp.sign(claims(), key=other), "n-1")
    with pytest.raises(SignInError, match="key the provider's JWKS does not list"):
        await client_for(idp).verify(idp.sign(claims(), key=other, kid="unknown"), "n-1")
    import jwt
    hs = jwt.encode(claims(), "secret-shared-key-of-32-bytes-long!!", algorithm="HS256",
                    headers={"kid": idp.kid})
    with pytest.raises(SignInError, match="HS256"):
        await client_for(idp).verify(hs, "n-1")


async def test_a_discovery_document_for_another_issuer_is_refused() -> None:
    idp = provider(url="http://127.0.0.1:11")  # says it is someone else
    with pytest.raises(SignInError, match="another issuer") as refused:
        await client_for(idp).provider()
    assert refused.value.status == 502


async def test_the_secret_goes_in_basic_auth_and_a_public_client_sends_none() -> None:
    idp = provider()
    client = client_for(idp)
    _, login = PendingLogins().start("/console")
    await client.sign_in(await authorize(idp, await client.authorization_url(login)), login)
    assert "client_secret" not in idp.token_requests[-1]  # it went in the header
    public = client_for(idp, settings(client_secret=None))
    _, login = PendingLogins().start("/console")
    with pytest.raises(SignInError, match="refused the code"):  # this provider wants one
        await public.sign_in(await authorize(idp, await public.authorization_url(login)),
                             login)
    assert "client_secret" not in idp.token_requests[-1]


async def test_roles_only_in_userinfo_are_read_from_there_for_the_same_subject() -> None:
    idp = provider(id_token_omits=("realm_access",))
    client = client_for(idp)
    _, login = PendingLogins().start("/console")
    identity = await client.sign_in(await authorize(idp, await client.authorization_url(login)),
                                    login)
    assert identity.role == "operator"

    liar = provider(id_token_omits=("realm_access",), userinfo_sub="someone-else")
    client = client_for(liar)
    _, login = PendingLogins().start("/console")
    identity = await client.sign_in(
        await authorize(liar, await client.authorization_url(login)), login)
    assert identity.role is None  # another subject's roles are not taken


def test_the_client_secret_can_come_from_the_environment_and_is_not_shown(
        tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "kafka: {bootstrap_servers: '127.0.0.1:1', topic: t}\n"
        "console:\n"
        "  oidc:\n"
        "    issuer: https://login.hospital.example/realms/staff\n"
        "    client_id: hl7gw-console\n"
        "    client_secret: ${env:OIDC_SECRET}\n"
        "    redirect_url: https://gw.example/console/oidc/callback\n"
        "    roles_claim: realm_access.roles\n"
        "    viewer_values: [staff]\n")
    loaded = load_settings(config, env={"OIDC_SECRET": "s3cr3t-from-env"})
    oidc = loaded.console.oidc
    assert oidc is not None and oidc.client_secret is not None
    assert oidc.client_secret.get_secret_value() == "s3cr3t-from-env"
    assert "s3cr3t-from-env" not in repr(loaded)
    with pytest.raises(ConfigError, match="viewer_values"):
        load_settings(_without_roles(config), env={"OIDC_SECRET": "x"})


def _without_roles(config: Path) -> Path:
    text = config.read_text().replace("    viewer_values: [staff]\n", "")
    changed = config.with_name("no-roles.yaml")
    changed.write_text(text)
    return changed
