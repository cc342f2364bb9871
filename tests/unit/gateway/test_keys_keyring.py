"""The keyring and its blob format: AES-256-GCM per record, any ring key reads, the
current one writes; failures name the key id, never the data."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from gateway.errors import EncryptionError
from gateway.keys.keyring import (
    NONCE_BYTES,
    PREFIX,
    TAG_BYTES,
    DataKey,
    Keyring,
    is_encrypted,
)

RECORD = (b"MSH|^~\\&|LAB|RIVERSIDE|HL7GW|HOSP|20250102||ADT^A01|MSG0001|P|2.5.1\r"
          b"PID|1||4711^^^RIV^MR||DOE^JANE\r")


def key(key_id: str, material: bytes | None = None) -> DataKey:
    return DataKey(key_id, material or os.urandom(32), datetime(2025, 1, 2, tzinfo=UTC))


def ring(*keys: DataKey, current: str | None = None) -> Keyring:
    return Keyring(keys, current or keys[0].id, source="test ring")


def test_round_trip_and_the_blob_layout() -> None:
    r = ring(key("k1"))
    blob = r.encrypt(RECORD, b"42")
    assert r.decrypt(blob, b"42") == RECORD
    header = PREFIX + bytes([2]) + b"k1"
    assert blob.startswith(header)
    assert len(blob) == len(header) + NONCE_BYTES + len(RECORD) + TAG_BYTES
    assert RECORD not in blob and b"DOE^JANE" not in blob
    assert r.decrypt(r.encrypt(b"", b"43"), b"43") == b""


def test_a_fresh_nonce_for_every_record() -> None:
    r = ring(key("k1"))
    one, two = r.encrypt(RECORD, b"42"), r.encrypt(RECORD, b"42")
    assert one != two
    start = len(PREFIX) + 1 + 2
    assert one[start:start + NONCE_BYTES] != two[start:start + NONCE_BYTES]
    nonces = {r.encrypt(b"x", b"1")[start:start + NONCE_BYTES] for _ in range(200)}
    assert len(nonces) == 200


def test_the_record_id_is_bound() -> None:
    r = ring(key("k1"))
    blob = r.encrypt(RECORD, b"42")
    with pytest.raises(EncryptionError, match="'k1' failed authentication") as info:
        r.decrypt(blob, b"43")
    assert "DOE" not in str(info.value) and "MSH" not in str(info.value)


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_a_changed_byte_fails(where: str) -> None:
    r = ring(key("k1"))
    blob = bytearray(r.encrypt(RECORD, b"42"))
    start = len(PREFIX) + 1 + 2
    at = {"nonce": start, "ciphertext": start + NONCE_BYTES + 5, "tag": len(blob) - 1}[where]
    blob[at] ^= 0x01
    with pytest.raises(EncryptionError, match="'k1' failed authentication"):
        r.decrypt(bytes(blob), b"42")


def test_the_header_is_authenticated_too() -> None:
    # the same material under two ids: only binding the header tells them apart
    material = os.urandom(32)
    r = ring(key("k1", material), key("k2", material))
    blob = r.encrypt(RECORD, b"42")
    at = len(PREFIX) + 1
    assert blob[at:at + 2] == b"k1"
    swapped = blob[:at] + b"k2" + blob[at + 2:]
    assert r.key_id_of(swapped) == "k2"
    with pytest.raises(EncryptionError, match="'k2' failed authentication"):
        r.decrypt(swapped, b"42")


def test_another_key_under_the_same_id_fails() -> None:
    blob = ring(key("k1")).encrypt(RECORD, b"42")
    with pytest.raises(EncryptionError, match="'k1' failed authentication"):
        ring(key("k1")).decrypt(blob, b"42")


def test_an_unknown_key_id_says_which_and_what_to_do() -> None:
    blob = ring(key("k-old")).encrypt(RECORD, b"42")
    with pytest.raises(EncryptionError) as info:
        ring(key("k-new"), key("k-mid")).decrypt(blob, b"42")
    text = str(info.value)
    assert "'k-old'" in text and "not in the keyring" in text
    assert "test ring" in text and "k-new, k-mid" in text and "backup" in text


def test_rotation_keeps_old_records_readable_and_writes_under_the_new_key() -> None:
    k1, k2 = key("k1"), key("k2")
    before = ring(k1)
    old = before.encrypt(RECORD, b"1")
    after = Keyring([k1, k2], "k2", source="test ring")
    assert after.decrypt(old, b"1") == RECORD
    new = after.encrypt(RECORD, b"2")
    assert after.key_id_of(new) == "k2" and after.key_id_of(old) == "k1"
    assert after.is_current(new) and not after.is_current(old)
    assert before.is_current(old)
    with pytest.raises(EncryptionError, match="'k2', which is not in the keyring"):
        before.decrypt(new, b"2")
    assert after.current_key_id == "k2" and after.key_ids == ["k1", "k2"]


@pytest.mark.parametrize("clear", [
    RECORD, b"\x0bMSH|^~\\&|A\r\x1c\r", b"FHS|^~\\&|", b"BHS|^~\\&|",
    b'{"resourceType": "Bundle"}', b"MSA|AA|1", b"", b"\x00", b"\x00hk",
    b"\x00hk1", b"\x00hk1\x02k1" + b"\x00" * 10,  # too short for nonce and tag
    b"\x00hk1\x00" + b"\x00" * 40,  # empty key id
    b"\x00hkX" + b"\x00" * 40,
])
def test_clear_text_is_never_taken_for_a_record(clear: bytes) -> None:
    assert not is_encrypted(clear)


def test_records_are_recognised_and_a_newer_version_is_refused_not_read_as_clear() -> None:
    r = ring(key("k1"))
    assert is_encrypted(r.encrypt(RECORD, b"1"))
    assert is_encrypted(r.encrypt(b"", b"1"))
    future = b"\x00hk2" + os.urandom(40)
    assert is_encrypted(future)
    with pytest.raises(EncryptionError, match=r"format version 2, .*upgrade"):
        r.decrypt(future, b"1")


def test_clear_text_and_damaged_headers_are_errors_not_crashes() -> None:
    r = ring(key("k1"))
    with pytest.raises(EncryptionError, match="not an encrypted record"):
        r.key_id_of(RECORD)
    with pytest.raises(EncryptionError, match="not an encrypted record"):
        r.decrypt(RECORD, b"1")
    blob = r.encrypt(RECORD, b"1")
    with pytest.raises(EncryptionError, match="truncated"):
        r.decrypt(blob[:len(PREFIX) + 3 + NONCE_BYTES + 4], b"1")
    with pytest.raises(EncryptionError, match="malformed key id"):
        r.decrypt(PREFIX + b"\x02k\xff" + os.urandom(40), b"1")


def test_a_ring_must_hold_its_current_key_once() -> None:
    with pytest.raises(EncryptionError, match="current key 'k9' is not among its keys"):
        Keyring([key("k1")], "k9", source="test ring")
    with pytest.raises(EncryptionError, match="'k1' appears twice"):
        Keyring([key("k1"), key("k1")], "k1", source="test ring")
    with pytest.raises(ValueError, match="16 bytes, not 32"):
        DataKey("k1", os.urandom(16))
    with pytest.raises(ValueError, match="key id"):
        DataKey("k 1", os.urandom(32))


def test_key_material_is_never_in_a_repr() -> None:
    k = key("k1")
    r = ring(k)
    for text in (repr(k), repr(r)):
        assert "k1" in text
        assert repr(k.material) not in text and k.material.hex() not in text


def test_a_ring_with_every_key_and_more_may_replace_this_one() -> None:
    k1, k2 = key("k1"), key("k2")
    assert ring(k1).missing_from(ring(k2, k1)) == []  # rotated: a new current key added


def test_a_ring_without_a_key_in_use_or_with_other_material_may_not() -> None:
    k1, k2 = key("k1"), key("k2")
    assert ring(k1, k2).missing_from(ring(k2)) == ["key 'k1' is missing"]
    other = ring(key("k1"), k2)  # same id, other material: its records would not open
    assert ring(k1, k2).missing_from(other) == ["key 'k1' has other material"]
