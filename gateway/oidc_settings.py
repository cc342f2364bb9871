"""The ``console.oidc:`` section: sign-in through the hospital's OpenID Connect provider.

Nested in ``gateway.config.ConsoleSettings.oidc``. This module imports nothing from
``gateway.config`` (which imports it), so it has its own strict base.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OidcSettings(_Strict):
    """The OpenID Connect provider the console signs people in with."""
