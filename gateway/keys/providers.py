"""Build the spool's keyring from the configured provider: key file, variable, or AWS KMS.

Called once at start-up (and again on reload); every failure is an ``EncryptionError``
saying what to run or fix, because a gateway that cannot read its keys must not start
(it would either refuse every message or write records nobody can read).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.errors import EncryptionError
from gateway.keys.envkeys import keyring_from_env
from gateway.keys.keyfile import KeyFile, read_key_file
from gateway.keys.keyring import DataKey, Keyring
from gateway.keys.kms import make_kms_client, unwrap
from gateway.keys.settings import EncryptionSettings


def key_file_path(settings: EncryptionSettings, base_dir: Path | None = None) -> Path:
    """``settings.key_file``, a relative path taken from ``base_dir`` (default: the
    directory hl7gw starts in, as every relative path in the config)."""
    path = settings.key_file.expanduser()
    return path if path.is_absolute() else (base_dir or Path.cwd()) / path


def read_provider_file(settings: EncryptionSettings, base_dir: Path | None = None
                       ) -> tuple[Path, KeyFile]:
    """The key file of a ``file`` or ``aws-kms`` provider, checked to be that provider's."""
    path = key_file_path(settings, base_dir)
    key_file = read_key_file(path)
    if key_file.provider != settings.provider:
        raise EncryptionError(
            f"key file {path} was made for provider {key_file.provider}, but the config "
            f"says provider {settings.provider}: set encryption.provider: "
            f"{key_file.provider}, or point encryption.key_file at the right file")
    return path, key_file


def load_keyring(settings: EncryptionSettings, *, base_dir: Path | None = None,
                 environ: Mapping[str, str] | None = None, kms_client: Any = None) -> Keyring:
    """The keyring ``settings`` describe: every key readable, the current one for writing.

    ``environ`` (default ``os.environ``) is read by the env provider; ``kms_client`` (a
    boto3 KMS client, created when not given) by the aws-kms provider.
    """
    if settings.provider == "env":
        return keyring_from_env(settings.key_env, os.environ if environ is None else environ)
    path, key_file = read_provider_file(settings, base_dir)
    source = f"key file {path}"
    if settings.provider == "file":
        keys = [DataKey(r.id, r.material or b"", r.created) for r in key_file.keys]
        return Keyring(keys, key_file.current, source=source)
    client = make_kms_client(settings) if kms_client is None else kms_client
    unwrapped = [DataKey(r.id, unwrap(client, r.kms_key_id or "", r.id, r.wrapped or b""),
                         r.created) for r in key_file.keys]
    return Keyring(unwrapped, key_file.current, source=source)


def configured_keyring(settings: EncryptionSettings | None) -> Keyring | None:
    """The keyring of a config's ``encryption:`` section, or None without one: what every
    command that opens the spool passes it (``serve``, ``replay``)."""
    return load_keyring(settings) if settings is not None else None
