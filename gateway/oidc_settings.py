"""The ``console.oidc:`` section: sign-in through the hospital's OpenID Connect provider.

Nested in ``gateway.config.ConsoleSettings.oidc``. This module imports nothing from
``gateway.config`` (which imports it), so it has its own strict base.

The console is a confidential (or public) client using the authorization code flow with
PKCE; everything about the provider's endpoints comes from its discovery document
(``<issuer>/.well-known/openid-configuration``), so the config names only the issuer.
Roles come from one claim of the id token (``roles_claim``, a dotted path such as
``realm_access.roles``), mapped to the console's two roles by value: a hospital's groups
decide who may see message bodies, not a list kept on the gateway.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateway.mllp.settings import ExistingFile

CALLBACK_PATH = "/console/oidc/callback"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _https_or_loopback(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an https:// URL, not {url!r}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError(f"{what} must use https:// (plain http is allowed only on "
                         "localhost, for testing)")
    return url


class OidcSettings(_Strict):
    """The OpenID Connect provider the console signs people in with."""

    name: str = Field(default="single sign-on", min_length=1)  # "Sign in with <name>"
    issuer: str  # e.g. https://login.hospital.example/realms/staff
    client_id: str = Field(min_length=1)
    # None: a public client (PKCE only); else sent with HTTP Basic (or in the form when the
    # provider supports only client_secret_post). Write it as ${env:...} or ${file:...}.
    client_secret: SecretStr | None = None
    redirect_url: str  # this console's callback: https://<gateway>/console/oidc/callback
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    roles_claim: str = Field(default="groups", min_length=1)  # dotted: realm_access.roles
    operator_values: list[str] = Field(default_factory=list)  # any of these: operator
    viewer_values: list[str] = Field(default_factory=list)  # else any of these: viewer
    username_claim: str = Field(default="preferred_username", min_length=1)  # then email, sub
    ca_file: ExistingFile | None = None  # the provider's CA, when not a public one
    timeout_s: float = Field(default=10.0, gt=0, le=120)  # each call to the provider

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return _https_or_loopback(value, "issuer").rstrip("/")

    @field_validator("redirect_url")
    @classmethod
    def _redirect(cls, value: str) -> str:
        _https_or_loopback(value, "redirect_url")
        if urlsplit(value).path != CALLBACK_PATH:
            raise ValueError(f"redirect_url must end in {CALLBACK_PATH} (the console's "
                             "callback), e.g. https://gateway.example:8080" + CALLBACK_PATH)
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("scopes must include openid (else the provider sends no "
                             "id token)")
        return value

    @model_validator(mode="after")
    def _some_role(self) -> OidcSettings:
        if not self.operator_values and not self.viewer_values:
            raise ValueError(f"set operator_values and/or viewer_values: the values of the "
                             f"{self.roles_claim!r} claim that make someone an operator or "
                             "a viewer (without them nobody could sign in)")
        return self
