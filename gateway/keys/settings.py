"""The ``encryption:`` section of the gateway config: where the spool's keys come from.

Nested in ``gateway.config.GatewaySettings.encryption`` (absent: the spool is not
encrypted). This module imports nothing from ``gateway.config`` (which imports it), so
it has its own strict base. A ``ValueError`` raised here comes out of the config loader
as ``file:line: encryption.<field>: message``.

A setting that the chosen provider does not use is refused rather than ignored: an
operator who writes ``kms_key_id`` under ``provider: file`` believes the keys are in
KMS, and should hear at start-up that they are not.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

DEFAULT_KEY_ENV = "HL7GW_SPOOL_KEYS"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncryptionSettings(_Strict):
    """Which provider holds the spool's keys, and where.

    ``file``: a JSON key file (mode 0600) holding the keys themselves. ``env``: the keys in
    an environment variable (``k2=BASE64,k1=BASE64``, the first is current), for
    containers whose secrets are injected. ``aws-kms``: a key file holding data keys
    wrapped by the KMS key ``kms_key_id``, unwrapped with ``kms:Decrypt`` at start-up.
    """

    provider: Literal["file", "env", "aws-kms"] = "file"
    key_file: Path = Path("var/keys.json")  # provider file and aws-kms
    key_env: str = DEFAULT_KEY_ENV  # provider env
    # aws-kms: the KMS key (ARN, key id or alias/...) that wraps new data keys
    kms_key_id: str | None = Field(default=None, validate_default=True)
    kms_region: str | None = None  # None: the AWS SDK's default (AWS_REGION, profile)

    @field_validator("key_file")
    @classmethod
    def _key_file_is_used(cls, value: Path, info: ValidationInfo) -> Path:
        # runs only when key_file is written in the file (no validate_default)
        if info.data.get("provider") == "env":
            raise ValueError("provider env reads its keys from key_env, not from a file: "
                             "remove key_file, or choose provider file or aws-kms")
        if not str(value).strip() or str(value) == ".":
            raise ValueError("give the key file's path, e.g. /var/lib/hl7gw/keys.json")
        return value

    @field_validator("key_env")
    @classmethod
    def _key_env_is_used(cls, value: str, info: ValidationInfo) -> str:
        provider = info.data.get("provider")
        if provider is not None and provider != "env":
            raise ValueError(f"provider {provider} reads its keys from key_file: remove "
                             "key_env, or choose provider env")
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not an environment variable name "
                             "(letters, digits and _, not starting with a digit)")
        return value

    @field_validator("kms_key_id")
    @classmethod
    def _kms_key_for_kms(cls, value: str | None, info: ValidationInfo) -> str | None:
        provider = info.data.get("provider")
        if provider == "aws-kms":
            if value is None or not value.strip():
                raise ValueError("provider aws-kms needs kms_key_id: the ARN, id or "
                                 "alias/NAME of the KMS key that wraps the data keys")
            return value.strip()
        if value is not None and provider is not None:
            raise ValueError(f"kms_key_id is only for provider aws-kms (this is "
                             f"provider {provider}): remove it, or set provider: aws-kms")
        return value

    @field_validator("kms_region")
    @classmethod
    def _kms_region_for_kms(cls, value: str | None, info: ValidationInfo) -> str | None:
        provider = info.data.get("provider")
        if value is not None and provider is not None and provider != "aws-kms":
            raise ValueError(f"kms_region is only for provider aws-kms (this is "
                             f"provider {provider}): remove it, or set provider: aws-kms")
        return value
