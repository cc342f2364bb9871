"""The ``alerts:`` section of the gateway config (``gateway.config.GatewaySettings.alerts``).

This module imports nothing from ``gateway.config`` (which imports it), so it has its own
strict base; a ``ValueError`` raised here comes out of the config loader as
``file:line: alerts.<field>: message``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertSettings(_Strict):
    """Alert rules and where they are sent."""
