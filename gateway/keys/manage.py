"""Making keys: what ``hl7gw keys init``, ``rotate`` and ``list`` do, without the printing.

A new key is 32 bytes from the operating system's CSPRNG (``secrets``), or a data key from
``kms:GenerateDataKey``. Its id is ``k<YYYYMMDD>-<6 hex>``: sortable by date, unique in
the ring, and safe to show (it is written in every record's header and in logs).

``init`` never overwrites: a second key file would make every record sealed under the
first unreadable. ``rotate`` only adds: older keys stay, so older records stay readable,
until they are re-encrypted (``hl7gw keys rewrap``) and the keys' backups are retired.
For the ``env`` provider nothing is written: the new value of the variable is returned for
the operator to put in the secret store, since only they can change a container's
environment.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.errors import EncryptionError
from gateway.keys.envkeys import format_env_keys, parse_env_keys
from gateway.keys.keyfile import FileProvider, KeyFile, KeyRecord, locked, write_atomic
from gateway.keys.keyring import KEY_BYTES, DataKey
from gateway.keys.kms import generate_data_key, make_kms_client
from gateway.keys.providers import key_file_path, read_provider_file
from gateway.keys.settings import EncryptionSettings


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about one key: never its material."""

    id: str
    created: datetime | None
    current: bool
    kms_key_id: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What ``init`` or ``rotate`` did: the new current key, and where it went.

    ``path`` for the file providers; ``env_value`` (a secret) for the env provider.
    """

    key_id: str
    previous_key_id: str | None
    key_count: int
    path: Path | None = None
    env_value: str | None = None


def new_key_id(taken: set[str], now: datetime | None = None) -> str:
    """A fresh ``k<YYYYMMDD>-<6 hex>`` id not in ``taken``."""
    day = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d")
    while True:
        key_id = f"k{day}-{secrets.token_hex(3)}"
        if key_id not in taken:
            return key_id


def init_keys(settings: EncryptionSettings, *, base_dir: Path | None = None,
              environ: Mapping[str, str] | None = None, kms_client: Any = None,
              now: datetime | None = None) -> Change:
    """The first key: a new key file (refusing to replace one), or a variable's value."""
    now = now or datetime.now(UTC)
    environ = os.environ if environ is None else environ
    if settings.provider == "env":
        if environ.get(settings.key_env):
            raise EncryptionError(
                f"environment variable {settings.key_env} is already set: its keys may "
                f"have sealed records; to add a key run `hl7gw keys rotate` instead")
        key = DataKey(new_key_id(set(), now), secrets.token_bytes(KEY_BYTES), now)
        return Change(key.id, None, 1, env_value=format_env_keys([key]))
    path = key_file_path(settings, base_dir)
    kms_client = _kms_client(settings, kms_client)
    with locked(path):
        if path.exists() or path.is_symlink():
            raise EncryptionError(
                f"key file {path} already exists: it is not replaced, since records sealed "
                "with its keys would become unreadable; to add a key run `hl7gw keys "
                "rotate`, to start over move the file away yourself (keep it while any "
                "spool or backup needs it)")
        record = _new_record(settings, set(), now, kms_client)
        provider: FileProvider = "file" if settings.provider == "file" else "aws-kms"
        write_atomic(path, KeyFile(provider, record.id, (record,)).to_json())
    return Change(record.id, None, 1, path=path)


def rotate_keys(settings: EncryptionSettings, *, base_dir: Path | None = None,
                environ: Mapping[str, str] | None = None, kms_client: Any = None,
                now: datetime | None = None) -> Change:
    """Add a key and make it current; every older key stays in the ring."""
    now = now or datetime.now(UTC)
    environ = os.environ if environ is None else environ
    if settings.provider == "env":
        value = environ.get(settings.key_env)
        if value is None:
            raise EncryptionError(
                f"environment variable {settings.key_env} is not set here: run this with "
                "the gateway's current value in it (rotate adds a key before it), or "
                "`hl7gw keys init` if there are no keys yet")
        keys = parse_env_keys(settings.key_env, value)
        key = DataKey(new_key_id({k.id for k in keys}, now), secrets.token_bytes(KEY_BYTES),
                      now)
        return Change(key.id, keys[0].id, len(keys) + 1,
                      env_value=format_env_keys([key, *keys]))
    kms_client = _kms_client(settings, kms_client)
    with locked(key_file_path(settings, base_dir)):
        path, key_file = read_provider_file(settings, base_dir)
        record = _new_record(settings, {k.id for k in key_file.keys}, now, kms_client)
        updated = key_file.with_key(record)
        write_atomic(path, updated.to_json())
    return Change(record.id, key_file.current, len(updated.keys), path=path)


def describe_keys(settings: EncryptionSettings, *, base_dir: Path | None = None,
                  environ: Mapping[str, str] | None = None) -> tuple[str, list[KeyInfo]]:
    """Where the keys are, and each key's id, date and role, oldest first; no KMS call."""
    environ = os.environ if environ is None else environ
    if settings.provider == "env":
        value = environ.get(settings.key_env)
        if value is None:
            raise EncryptionError(f"environment variable {settings.key_env} is not set here")
        keys = parse_env_keys(settings.key_env, value)
        infos = [KeyInfo(k.id, None, n == 0) for n, k in enumerate(keys)]
        return f"environment variable {settings.key_env}", infos[::-1]
    path, key_file = read_provider_file(settings, base_dir)
    return f"key file {path}", [KeyInfo(r.id, r.created, r.id == key_file.current,
                                        r.kms_key_id) for r in key_file.keys]


def _new_record(settings: EncryptionSettings, taken: set[str], now: datetime,
                kms_client: Any) -> KeyRecord:
    key_id = new_key_id(taken, now)
    if settings.provider == "file":
        return KeyRecord(key_id, now, material=secrets.token_bytes(KEY_BYTES))
    kms_key_id = settings.kms_key_id or ""
    _plain, wrapped = generate_data_key(kms_client, kms_key_id, key_id)
    return KeyRecord(key_id, now, wrapped=wrapped, kms_key_id=kms_key_id)


def _kms_client(settings: EncryptionSettings, given: Any) -> Any:
    """The KMS client for the aws-kms provider (made before any file is touched)."""
    if settings.provider != "aws-kms" or given is not None:
        return given
    return make_kms_client(settings)
