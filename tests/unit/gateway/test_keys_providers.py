"""Key providers: the 0600 key file (atomic, locked), the environment variable, and AWS KMS
envelope encryption with a stand-in KMS client; init and rotate; the config section."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

import gateway.keys.manage as manage
import gateway.keys.providers as providers
from gateway.config import load_settings
from gateway.errors import ConfigError, EncryptionError
from gateway.keys.envkeys import format_env_keys, parse_env_keys
from gateway.keys.keyfile import write_atomic
from gateway.keys.keyring import DataKey, Keyring
from gateway.keys.manage import describe_keys, init_keys, rotate_keys
from gateway.keys.providers import load_keyring
from gateway.keys.settings import EncryptionSettings

RECORD = b"MSH|^~\\&|LAB|RIV|HL7GW|HOSP|20250102||ORU^R01|M1|P|2.5.1\rPID|1||4711^^^RIV^MR\r"
ARN = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


class FakeKms:
    """A KMS stand-in: wraps data keys, and unwraps them only with the same KMS key and
    encryption context, as KMS does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.plain: dict[bytes, tuple[str, dict[str, str], bytes]] = {}
        self.refuse: Exception | None = None

    def generate_data_key(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("generate_data_key", kw))
        plain, wrapped = os.urandom(32), b"kms-wrapped:" + os.urandom(24)
        self.plain[wrapped] = (kw["KeyId"], kw.get("EncryptionContext", {}), plain)
        return {"Plaintext": plain, "CiphertextBlob": wrapped, "KeyId": kw["KeyId"]}

    def decrypt(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("decrypt", kw))
        if self.refuse is not None:
            raise self.refuse
        kms_key, context, plain = self.plain[kw["CiphertextBlob"]]
        if kw.get("KeyId") != kms_key or kw.get("EncryptionContext", {}) != context:
            raise ClientError({"Error": {"Code": "InvalidCiphertextException",
                                         "Message": ""}}, "Decrypt")
        return {"Plaintext": plain, "KeyId": kms_key}


@pytest.fixture(autouse=True)
def _umask_zero() -> Iterator[None]:
    """With umask 0, only the code's own modes keep the key file private."""
    old = os.umask(0)
    yield
    os.umask(old)


def file_settings(tmp_path: Path) -> EncryptionSettings:
    return EncryptionSettings(provider="file", key_file=tmp_path / "keys" / "keys.json")


def materials(path: Path) -> list[str]:
    return [k["material"] for k in json.loads(path.read_text())["keys"]]


# --- the key file --------------------------------------------------------------------------

def test_init_creates_a_0600_file_and_the_keyring_loads_from_it(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    change = init_keys(settings)
    path = settings.key_file
    assert change.path == path and change.previous_key_id is None and change.key_count == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    doc = json.loads(path.read_text())
    assert doc["current"] == change.key_id and doc["provider"] == "file"
    assert len(base64.b64decode(doc["keys"][0]["material"])) == 32
    ring = load_keyring(settings)
    assert ring.key_ids == [change.key_id] and ring.current_key_id == change.key_id
    assert ring.decrypt(ring.encrypt(RECORD, b"7"), b"7") == RECORD
    assert str(path) in ring.source


def test_init_never_replaces_a_key_file(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    init_keys(settings)
    before = settings.key_file.read_bytes()
    with pytest.raises(EncryptionError, match=r"already exists.*hl7gw keys rotate"):
        init_keys(settings)
    assert settings.key_file.read_bytes() == before


def test_a_relative_key_file_is_taken_from_base_dir(tmp_path: Path) -> None:
    settings = EncryptionSettings(key_file=Path("var/keys.json"))
    change = init_keys(settings, base_dir=tmp_path)
    assert change.path == tmp_path / "var" / "keys.json" and change.path.is_file()
    assert load_keyring(settings, base_dir=tmp_path).current_key_id == change.key_id


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_key_file_others_can_read_or_change_is_refused(tmp_path: Path, mode: int) -> None:
    settings = file_settings(tmp_path)
    init_keys(settings)
    settings.key_file.chmod(mode)
    with pytest.raises(EncryptionError) as info:
        load_keyring(settings)
    assert f"chmod 600 {settings.key_file}" in str(info.value)
    assert f"{mode:04o}" in str(info.value)
    settings.key_file.chmod(0o400)  # read-only for the owner is fine (a mounted Secret)
    load_keyring(settings)


def test_a_missing_key_file_says_to_run_init(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    with pytest.raises(EncryptionError) as info:
        load_keyring(settings)
    text = str(info.value)
    assert str(settings.key_file) in text and "does not exist" in text
    assert "hl7gw keys init --config" in text and "restore" in text


def test_a_key_file_of_another_user_says_who_must_own_it(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    settings = file_settings(tmp_path)
    init_keys(settings)
    real_open = os.open

    def denied(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path) == settings.key_file:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)  # tests run as root, who may read anything
    with pytest.raises(EncryptionError) as info:
        load_keyring(settings)
    assert "permission denied" in str(info.value)
    assert f"`chown <that user> {settings.key_file}`" in str(info.value)


def _write_doc(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (doc if isinstance(doc, str) else json.dumps(doc)).encode())


GOOD_KEY = {"id": "k1", "created": "2025-01-02T09:00:00Z",
            "material": base64.b64encode(b"\x01" * 32).decode()}


@pytest.mark.parametrize(("doc", "what"), [
    ("{not json", "not valid JSON"),
    ([], "(top level): must be a JSON object"),
    ({"format": "other", "provider": "file", "current": "k1", "keys": [GOOD_KEY]}, "format:"),
    ({"format": "hl7gw-keys/1", "provider": "file", "current": "k2", "keys": [GOOD_KEY]},
     "current: must be the id of one of the keys"),
    ({"format": "hl7gw-keys/1", "provider": "file", "current": "k1", "keys": []},
     "keys: must be a non-empty list"),
    ({"format": "hl7gw-keys/1", "provider": "file", "current": "k1",
      "keys": [GOOD_KEY, GOOD_KEY]}, "keys[1].id: 'k1' appears twice"),
    ({"format": "hl7gw-keys/1", "provider": "file", "current": "k1",
      "keys": [{**GOOD_KEY, "material": base64.b64encode(b"\x01" * 16).decode()}]},
     "keys[0].material: must be base64 of 32 bytes (is 16)"),
    ({"format": "hl7gw-keys/1", "provider": "file", "current": "k1",
      "keys": [{**GOOD_KEY, "material": "not base64!"}]}, "keys[0].material: must be base64"),
    ({"format": "hl7gw-keys/1", "provider": "file", "current": "k1",
      "keys": [{**GOOD_KEY, "created": "yesterday"}]}, "keys[0].created: must be a UTC time"),
    ({"format": "hl7gw-keys/1", "provider": "file", "current": "k1",
      "keys": [{k: v for k, v in GOOD_KEY.items() if k != "material"}]},
     "keys[0].material: missing"),
    ({"format": "hl7gw-keys/1", "provider": "file", "current": "k1",
      "keys": [{**GOOD_KEY, "wrapped": "eA=="}]}, "keys[0].wrapped: unknown key"),
])
def test_a_malformed_key_file_names_the_file_and_what_is_wrong(tmp_path: Path, doc: Any,
                                                                what: str) -> None:
    settings = file_settings(tmp_path)
    _write_doc(settings.key_file, doc)
    with pytest.raises(EncryptionError) as info:
        load_keyring(settings)
    text = str(info.value)
    assert text.startswith(f"key file {settings.key_file}")
    assert what in text
    assert GOOD_KEY["material"] not in text


def test_a_key_file_of_another_provider_is_refused(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    init_keys(settings)
    kms = EncryptionSettings(provider="aws-kms", key_file=settings.key_file, kms_key_id=ARN)
    with pytest.raises(EncryptionError, match="made for provider file, but the config says "
                                              "provider aws-kms"):
        load_keyring(kms, kms_client=FakeKms())


def test_rotate_adds_a_current_key_and_old_records_stay_readable(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    first = init_keys(settings)
    old_ring = load_keyring(settings)
    old = old_ring.encrypt(RECORD, b"1")
    second = rotate_keys(settings)
    assert second.previous_key_id == first.key_id and second.key_count == 2
    assert second.key_id != first.key_id
    assert stat.S_IMODE(settings.key_file.stat().st_mode) == 0o600
    new_ring = load_keyring(settings)
    assert new_ring.current_key_id == second.key_id
    assert new_ring.key_ids == [first.key_id, second.key_id]
    assert new_ring.decrypt(old, b"1") == RECORD
    assert new_ring.key_id_of(new_ring.encrypt(RECORD, b"2")) == second.key_id
    where, infos = describe_keys(settings)
    assert where == f"key file {settings.key_file}"
    assert [(i.id, i.current) for i in infos] == [(first.key_id, False), (second.key_id, True)]


def test_concurrent_rotations_lose_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    settings = file_settings(tmp_path)
    init_keys(settings)
    read = providers.read_provider_file

    def slow_read(*args: Any, **kwargs: Any) -> Any:
        found = read(*args, **kwargs)
        time.sleep(0.05)  # all would read the same file, were they not serialised
        return found

    monkeypatch.setattr(manage, "read_provider_file", slow_read)
    threads = [threading.Thread(target=rotate_keys, args=(settings,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(load_keyring(settings).key_ids) == 5


# --- atomic writes -------------------------------------------------------------------------

def test_a_write_is_complete_and_private_before_it_replaces_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(b"old")
    path.chmod(0o600)
    seen: list[tuple[int, bytes]] = []
    synced: list[str] = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src: Any, dst: Any) -> None:
        seen.append((stat.S_IMODE(os.stat(src).st_mode), Path(src).read_bytes()))
        assert synced == ["file"]  # the data reached the disk before the rename
        real_replace(src, dst)

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    write_atomic(path, b"new content")
    assert seen == [(0o600, b"new content")]
    assert synced == ["file", "dir"]
    assert path.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = file_settings(tmp_path)
    init_keys(settings)
    before = settings.key_file.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(EncryptionError, match=r"No space left on device.*as it was before"):
        rotate_keys(settings)
    assert settings.key_file.read_bytes() == before
    assert not [p for p in settings.key_file.parent.iterdir() if p.name.endswith(".tmp")]


# --- the environment variable --------------------------------------------------------------

def test_env_keys_first_is_current_and_older_ones_read() -> None:
    k1, k2 = DataKey("k1", os.urandom(32)), DataKey("k2", os.urandom(32))
    old = Keyring([k1], "k1").encrypt(RECORD, b"1")
    value = format_env_keys([k2, k1])
    assert value.startswith("k2=") and ",k1=" in value
    settings = EncryptionSettings(provider="env")
    ring = load_keyring(settings, environ={"HL7GW_SPOOL_KEYS": value})
    assert ring.current_key_id == "k2" and ring.key_ids == ["k2", "k1"]
    assert ring.decrypt(old, b"1") == RECORD
    assert ring.source == "environment variable HL7GW_SPOOL_KEYS"
    spaced = value.replace(",", " , ")
    assert [k.id for k in parse_env_keys("X", f" {spaced} ")] == ["k2", "k1"]


def test_env_provider_reads_the_configured_variable() -> None:
    value = format_env_keys([DataKey("a1", os.urandom(32))])
    settings = EncryptionSettings(provider="env", key_env="SITE_KEYS")
    assert load_keyring(settings, environ={"SITE_KEYS": value}).current_key_id == "a1"
    with pytest.raises(EncryptionError, match=r"SITE_KEYS is not set.*hl7gw keys init"):
        load_keyring(settings, environ={"HL7GW_SPOOL_KEYS": value})


SECRET = base64.b64encode(b"\x07" * 32).decode()


@pytest.mark.parametrize(("value", "what"), [
    ("", "is empty"),
    (" , ", "is empty"),
    (SECRET, "entry 1 is not id=BASE64"),
    (f"k1={SECRET},k2", "entry 2 is not id=BASE64"),
    (f"k1={SECRET},k1={SECRET}", "'k1' appears twice"),
    (f"k1={SECRET[:-2]}", "key 'k1' is not base64"),
    (f"k1={SECRET}, k2=", "entry 2 is not id=BASE64"),
    (f"k1={base64.b64encode(b'x' * 16).decode()}", "key 'k1' is 16 bytes, not 32"),
    (f"bad id={SECRET}", "entry 1: the key id must be"),
])
def test_a_malformed_variable_says_what_is_wrong_without_the_value(value: str,
                                                                   what: str) -> None:
    with pytest.raises(EncryptionError) as info:
        load_keyring(EncryptionSettings(provider="env"), environ={"HL7GW_SPOOL_KEYS": value})
    text = str(info.value)
    assert text.startswith("environment variable HL7GW_SPOOL_KEYS")
    assert what in text
    assert SECRET[:8] not in text and "bad id" not in text


def test_env_init_and_rotate_return_values_and_write_nothing(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.chdir(tmp_path)
    settings = EncryptionSettings(provider="env")
    first = init_keys(settings, environ={})
    assert first.env_value is not None and first.path is None
    with pytest.raises(EncryptionError, match=r"already set.*rotate"):
        init_keys(settings, environ={"HL7GW_SPOOL_KEYS": first.env_value})
    second = rotate_keys(settings, environ={"HL7GW_SPOOL_KEYS": first.env_value})
    assert second.env_value is not None
    assert second.env_value.endswith("," + first.env_value)
    assert second.previous_key_id == first.key_id and second.key_count == 2
    ring = load_keyring(settings, environ={"HL7GW_SPOOL_KEYS": second.env_value})
    assert ring.current_key_id == second.key_id
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(EncryptionError, match="not set here"):
        rotate_keys(settings, environ={})


# --- AWS KMS -------------------------------------------------------------------------------

def kms_settings(tmp_path: Path, kms_key_id: str = ARN) -> EncryptionSettings:
    return EncryptionSettings(provider="aws-kms", key_file=tmp_path / "keys.json",
                              kms_key_id=kms_key_id, kms_region="eu-central-1")


def test_kms_init_stores_only_the_wrapped_key_and_load_unwraps_it(tmp_path: Path) -> None:
    kms = FakeKms()
    settings = kms_settings(tmp_path)
    change = init_keys(settings, kms_client=kms)
    (name, call), = kms.calls
    assert name == "generate_data_key"
    assert call["KeyId"] == ARN and call["KeySpec"] == "AES_256"
    assert call["EncryptionContext"]["hl7gw-key-id"] == change.key_id
    (wrapped, (_, _, plain)), = kms.plain.items()
    text = settings.key_file.read_text()
    assert base64.b64encode(plain).decode() not in text
    entry = json.loads(text)["keys"][0]
    assert entry["kms_key_id"] == ARN and base64.b64decode(entry["wrapped"]) == wrapped
    assert "material" not in entry
    assert stat.S_IMODE(settings.key_file.stat().st_mode) == 0o600

    ring = load_keyring(settings, kms_client=kms)
    name, call = kms.calls[-1]
    assert name == "decrypt" and call["KeyId"] == ARN and call["CiphertextBlob"] == wrapped
    # the keyring holds the data key KMS generated: it opens what that key sealed
    sealed = Keyring([DataKey(change.key_id, plain)], change.key_id).encrypt(RECORD, b"9")
    assert ring.decrypt(sealed, b"9") == RECORD


def test_kms_rotation_wraps_with_the_configured_key_and_unwraps_each_with_its_own(
        tmp_path: Path) -> None:
    kms = FakeKms()
    init_keys(kms_settings(tmp_path, "alias/old"), kms_client=kms)
    moved = kms_settings(tmp_path, "alias/new")
    change = rotate_keys(moved, kms_client=kms)
    assert kms.calls[-1][1]["KeyId"] == "alias/new"
    kms.calls.clear()
    ring = load_keyring(moved, kms_client=kms)
    assert sorted(c["KeyId"] for _, c in kms.calls) == ["alias/new", "alias/old"]
    assert ring.current_key_id == change.key_id and len(ring.key_ids) == 2
    _, infos = describe_keys(moved)
    assert [i.kms_key_id for i in infos] == ["alias/old", "alias/new"]


def test_a_kms_refusal_is_an_encryption_error_saying_what_to_check(tmp_path: Path) -> None:
    kms = FakeKms()
    settings = kms_settings(tmp_path)
    change = init_keys(settings, kms_client=kms)
    kms.refuse = ClientError({"Error": {"Code": "AccessDeniedException",
                                        "Message": "not authorized to perform kms:Decrypt"}},
                             "Decrypt")
    with pytest.raises(EncryptionError) as info:
        load_keyring(settings, kms_client=kms)
    text = str(info.value)
    assert f"refused to unwrap spool key {change.key_id!r} with {ARN}" in text
    assert "AccessDeniedException" in text and "kms:Decrypt" in text


def test_a_wrapped_key_moved_to_another_id_does_not_unwrap(tmp_path: Path) -> None:
    kms = FakeKms()
    settings = kms_settings(tmp_path)
    change = init_keys(settings, kms_client=kms)
    doc = json.loads(settings.key_file.read_text())
    doc["keys"][0]["id"] = doc["current"] = "k-forged"
    write_atomic(settings.key_file, json.dumps(doc).encode())
    with pytest.raises(EncryptionError, match=r"'k-forged'.*InvalidCiphertextException"):
        load_keyring(settings, kms_client=kms)
    assert change.key_id != "k-forged"


def test_without_boto3_the_error_says_what_to_install(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    settings = kms_settings(tmp_path)
    with pytest.raises(EncryptionError, match=r"needs boto3: pip install 'hl7gw\[aws\]'"):
        init_keys(settings)
    assert not settings.key_file.exists()
    init_keys(settings, kms_client=FakeKms())
    with pytest.raises(EncryptionError, match=r"pip install 'hl7gw\[aws\]'"):
        load_keyring(settings)


# --- the config section --------------------------------------------------------------------

def write_config(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(f"kafka:\n  bootstrap_servers: 127.0.0.1:9092\n{section}")
    return path


def test_the_section_is_optional_and_has_safe_defaults(tmp_path: Path) -> None:
    assert load_settings(write_config(tmp_path, ""), env={}).encryption is None
    settings = load_settings(write_config(tmp_path, "encryption: {}\n"), env={}).encryption
    assert settings == EncryptionSettings()
    assert (settings.provider, settings.key_file) == ("file", Path("var/keys.json"))


@pytest.mark.parametrize(("section", "where"), [
    ("encryption:\n  provider: aws-kms\n", ":3: encryption.kms_key_id: provider aws-kms needs"),
    ("encryption:\n  provider: file\n  kms_key_id: alias/x\n",
     ":5: encryption.kms_key_id: kms_key_id is only for provider aws-kms"),
    ("encryption:\n  provider: file\n  kms_region: eu-west-1\n",
     ":5: encryption.kms_region: kms_region is only for provider aws-kms"),
    ("encryption:\n  provider: env\n  key_file: keys.json\n",
     ":5: encryption.key_file: provider env reads its keys from key_env"),
    ("encryption:\n  provider: file\n  key_env: KEYS\n",
     ":5: encryption.key_env: provider file reads its keys from key_file"),
    ("encryption:\n  provider: env\n  key_env: 9KEYS\n",
     ":5: encryption.key_env: '9KEYS' is not an environment variable name"),
    ("encryption:\n  provider: vault\n", ":4: encryption.provider:"),
    ("encryption:\n  provder: env\n", ":4: encryption.provder: unknown key"),
])
def test_config_mistakes_name_file_line_and_field(tmp_path: Path, section: str,
                                                  where: str) -> None:
    path = write_config(tmp_path, section)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert f"{path}{where}" in str(info.value)
