"""Keys in an environment variable: ``HL7GW_SPOOL_KEYS="k2=BASE64,k1=BASE64"``.

For containers whose secrets are injected as variables (a Kubernetes Secret through
``env.valueFrom.secretKeyRef``, ECS task secrets): nothing is written to disk. Entries are
``id=base64(32 bytes)`` separated by commas; the first is current, the others stay
readable. The variable's value is never repeated in an error: entries are named by
position and id.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping

from gateway.errors import EncryptionError
from gateway.keys.keyring import KEY_BYTES, DataKey, Keyring, check_key_id


def parse_env_keys(name: str, value: str) -> list[DataKey]:
    """The keys in ``value`` (the variable ``name``), current first."""
    where = f"environment variable {name}"
    keys: list[DataKey] = []
    seen: set[str] = set()
    entries = [e.strip() for e in value.split(",")]
    if not any(entries):
        raise EncryptionError(f"{where} is empty: {_hint(name)}")
    for n, entry in enumerate(entries, 1):
        key_id, eq, encoded = entry.partition("=")
        key_id, encoded = key_id.strip(), encoded.strip()
        if not eq or not encoded.strip("="):
            # a bare base64 key ends in "=": its text would be taken for an id, so
            # neither part is repeated here
            raise EncryptionError(f"{where}: entry {n} is not id=BASE64 (entries are "
                                  "separated by commas, the current key first)")
        try:
            check_key_id(key_id)
        except ValueError:
            raise EncryptionError(f"{where}: entry {n}: the key id must be 1 to 64 "
                                  "characters of A-Z a-z 0-9 . _ -") from None
        if key_id in seen:
            raise EncryptionError(f"{where}: key id {key_id!r} appears twice")
        seen.add(key_id)
        try:
            material = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise EncryptionError(f"{where}: key {key_id!r} is not base64") from None
        if len(material) != KEY_BYTES:
            raise EncryptionError(f"{where}: key {key_id!r} is {len(material)} bytes, not "
                                  f"{KEY_BYTES} (AES-256): {_hint(name)}")
        keys.append(DataKey(key_id, material))
    return keys


def format_env_keys(keys: Iterable[DataKey]) -> str:
    """The variable's value for ``keys`` (the first one current)."""
    return ",".join(f"{k.id}={base64.b64encode(k.material).decode('ascii')}" for k in keys)


def keyring_from_env(name: str, environ: Mapping[str, str]) -> Keyring:
    """The keyring in the variable ``name``; ``EncryptionError`` when unset or malformed."""
    value = environ.get(name)
    if value is None:
        raise EncryptionError(f"environment variable {name} is not set: {_hint(name)}")
    keys = parse_env_keys(name, value)
    return Keyring(keys, keys[0].id, source=f"environment variable {name}")


def _hint(name: str) -> str:
    return (f"`hl7gw keys init --config CONFIG` prints a value for {name}; if the spool "
            "already holds encrypted records, set the value they were sealed with (from "
            "your secret store) instead")
