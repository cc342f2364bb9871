"""AWS KMS envelope encryption: data keys wrapped by a KMS key, unwrapped at start-up.

The key file holds each AES-256 data key only as KMS ciphertext (``wrapped``). At start
the gateway asks KMS to unwrap them (``kms:Decrypt``) and keeps the plain keys in memory
only; a copy of the key file is useless without that permission, and every unwrap is in
CloudTrail. New keys come from ``kms:GenerateDataKey`` (``KeySpec=AES_256``).

Each call carries an encryption context naming the purpose and the data key's id, so a
wrapped key cannot be passed off under another id, and CloudTrail shows which key was
unwrapped. ``boto3`` is optional (``pip install 'hl7gw[aws]'``); the client is created
only when this provider is used, and tests inject a stand-in object instead.
"""

from __future__ import annotations

import importlib
from typing import Any

from gateway.errors import EncryptionError
from gateway.keys.keyring import KEY_BYTES
from gateway.keys.settings import EncryptionSettings

PURPOSE = "hl7gw-spool"


def encryption_context(key_id: str) -> dict[str, str]:
    """The KMS encryption context bound to data key ``key_id``."""
    return {"purpose": PURPOSE, "hl7gw-key-id": key_id}


def make_kms_client(settings: EncryptionSettings) -> Any:
    """A boto3 KMS client for ``settings.kms_region`` (the SDK's default when None)."""
    try:
        boto3 = importlib.import_module("boto3")
    except ImportError:
        raise EncryptionError("the aws-kms provider needs boto3: pip install 'hl7gw[aws]'") \
            from None
    return boto3.client("kms", region_name=settings.kms_region)


def generate_data_key(client: Any, kms_key_id: str, key_id: str) -> tuple[bytes, bytes]:
    """A new data key for ``key_id``: (plaintext, wrapped by ``kms_key_id``)."""
    try:
        reply = client.generate_data_key(KeyId=kms_key_id, KeySpec="AES_256",
                                         EncryptionContext=encryption_context(key_id))
    except _aws_errors() as exc:
        raise EncryptionError(
            f"AWS KMS refused to generate a data key with {kms_key_id}: {exc}: check the "
            "key exists and enabled in this region, and that this identity may "
            "kms:GenerateDataKey on it") from None
    plaintext, wrapped = reply.get("Plaintext"), reply.get("CiphertextBlob")
    if not isinstance(plaintext, bytes) or len(plaintext) != KEY_BYTES \
            or not isinstance(wrapped, bytes) or not wrapped:
        raise EncryptionError(f"AWS KMS answered GenerateDataKey with {kms_key_id} without "
                              "a 32-byte data key")
    return plaintext, wrapped


def unwrap(client: Any, kms_key_id: str, key_id: str, wrapped: bytes) -> bytes:
    """The plain data key ``key_id`` from its ``wrapped`` form."""
    try:
        reply = client.decrypt(CiphertextBlob=wrapped, KeyId=kms_key_id,
                               EncryptionContext=encryption_context(key_id))
    except _aws_errors() as exc:
        raise EncryptionError(
            f"AWS KMS refused to unwrap spool key {key_id!r} with {kms_key_id}: {exc}: check "
            "that the gateway's identity (IAM role) may kms:Decrypt on that key, that the "
            "key is enabled, and the region (encryption.kms_region)") from None
    plaintext = reply.get("Plaintext")
    if not isinstance(plaintext, bytes) or len(plaintext) != KEY_BYTES:
        raise EncryptionError(f"AWS KMS unwrapped spool key {key_id!r} to something other "
                              "than a 32-byte key: the key file entry is wrong")
    return plaintext


def _aws_errors() -> tuple[type[Exception], ...]:
    """What botocore raises for a refusal or an unreachable endpoint (botocore is a
    dependency; boto3 is not)."""
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    return (BotoCoreError, ClientError)
