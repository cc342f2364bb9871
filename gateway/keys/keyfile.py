"""The key file: a small JSON document, mode 0600, written atomically, read with care.

Used by the ``file`` provider (it holds the AES keys themselves) and the ``aws-kms``
provider (it holds data keys wrapped by a KMS key, useless without ``kms:Decrypt``)::

    {
      "format": "hl7gw-keys/1",
      "provider": "file",
      "current": "k20250102-a1b2c3",
      "keys": [
        {"id": "k20240101-0f9e8d", "created": "2024-01-01T09:00:00Z", "material": "<base64>"},
        {"id": "k20250102-a1b2c3", "created": "2025-01-02T09:00:00Z", "material": "<base64>"}
      ]
    }

(``aws-kms``: each key has ``wrapped`` and ``kms_key_id`` instead of ``material``.)

Why so strict: the file is the only way to read the spool. It is created 0600 and a file
that other users can read or write is refused, as ssh refuses a private key: a copy
of it plus a copy of the spool is every message in clear. Writes go to a temporary file in
the same folder, fsync, rename over the old one, fsync the folder, so a crash or a full
disk leaves the old file or the new one, never half of one; a lock file serialises two
``hl7gw keys rotate`` runs so neither loses the other's key. Errors name the file and
the entry, never a key's material.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from gateway.errors import EncryptionError
from gateway.keys.keyring import KEY_BYTES, check_key_id

FORMAT = "hl7gw-keys/1"
MAX_FILE_BYTES = 1024 * 1024  # thousands of keys; anything bigger is the wrong file
FileProvider = Literal["file", "aws-kms"]
INIT_HINT = ("run `hl7gw keys init --config CONFIG` (CONFIG: this gateway's config file) "
             "to create it; if the spool already holds encrypted records, restore the file "
             "from its backup instead: a new key cannot read them")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key as the file stores it: its material (``file``) or its wrapped form
    (``aws-kms``, with the KMS key that wrapped it)."""

    id: str
    created: datetime
    material: bytes | None = field(default=None, repr=False)
    wrapped: bytes | None = field(default=None, repr=False)
    kms_key_id: str | None = None


@dataclass(frozen=True, slots=True)
class KeyFile:
    """The whole key file: which provider wrote it, the current key, every key."""

    provider: FileProvider
    current: str
    keys: tuple[KeyRecord, ...]

    def with_key(self, key: KeyRecord) -> KeyFile:
        """This file with ``key`` added and made current (older keys stay readable)."""
        return KeyFile(self.provider, key.id, (*self.keys, key))

    def to_json(self) -> bytes:
        """The file's bytes: indented JSON, oldest key first."""
        keys: list[dict[str, Any]] = []
        for k in self.keys:
            entry: dict[str, Any] = {"id": k.id, "created": format_time(k.created)}
            if k.material is not None:
                entry["material"] = base64.b64encode(k.material).decode("ascii")
            if k.wrapped is not None:
                entry["wrapped"] = base64.b64encode(k.wrapped).decode("ascii")
                entry["kms_key_id"] = k.kms_key_id
            keys.append(entry)
        doc = {"format": FORMAT, "provider": self.provider, "current": self.current,
               "keys": keys}
        return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def format_time(when: datetime) -> str:
    """``2025-01-02T09:00:00Z``: UTC, whole seconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_key_file(path: Path) -> KeyFile:
    """Read and check the key file; ``EncryptionError`` says what to run or fix."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise EncryptionError(f"key file {path} does not exist: {INIT_HINT}") from None
    except PermissionError:
        raise EncryptionError(
            f"cannot read key file {path}: permission denied: the user the gateway runs as "
            f"must own it (`chown <that user> {path}`, keep mode 600)") from None
    except OSError as exc:
        raise EncryptionError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())  # the file opened, not whatever the path names now
        if not stat.S_ISREG(st.st_mode):
            raise EncryptionError(f"key file {path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise EncryptionError(
                f"key file {path} can be read or changed by other users (mode {mode:04o}): "
                f"run `chmod 600 {path}`, and check who may have copied it")
        raw = f.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise EncryptionError(f"key file {path} is over {MAX_FILE_BYTES // 1024} KiB: "
                              "not an hl7gw key file")
    return parse_key_file(raw, str(path))


def parse_key_file(raw: bytes, where: str) -> KeyFile:
    """The key file from its bytes; ``where`` names it in errors."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = f" line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise EncryptionError(f"key file {where}:{line} not valid JSON (UTF-8): "
                              "restore it from its backup") from None
    if not isinstance(doc, dict):
        raise _bad(where, "", "must be a JSON object")
    if doc.get("format") != FORMAT:
        raise _bad(where, "format", f"must be {FORMAT!r} (is this an hl7gw key file? one "
                   "written by a newer release?)")
    provider = doc.get("provider")
    if provider not in ("file", "aws-kms"):
        raise _bad(where, "provider", "must be 'file' or 'aws-kms'")
    unknown = sorted(set(doc) - {"format", "provider", "current", "keys"})
    if unknown:
        raise _bad(where, unknown[0], "unknown key")
    entries = doc.get("keys")
    if not isinstance(entries, list) or not entries:
        raise _bad(where, "keys", "must be a non-empty list of keys")
    records: list[KeyRecord] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries):
        record = _record(entry, provider, where, f"keys[{n}]")
        if record.id in seen:
            raise _bad(where, f"keys[{n}].id", f"{record.id!r} appears twice")
        seen.add(record.id)
        records.append(record)
    current = doc.get("current")
    if not isinstance(current, str) or current not in seen:
        raise _bad(where, "current", "must be the id of one of the keys")
    return KeyFile(provider, current, tuple(records))


def _record(entry: Any, provider: FileProvider, where: str, at: str) -> KeyRecord:
    if not isinstance(entry, dict):
        raise _bad(where, at, "must be an object {id, created, ...}")
    fields = ({"id", "created", "material"} if provider == "file"
              else {"id", "created", "wrapped", "kms_key_id"})
    extra = sorted(set(entry) - fields)
    if extra:
        raise _bad(where, f"{at}.{extra[0]}", f"unknown key for provider {provider}")
    missing = sorted(fields - set(entry))
    if missing:
        raise _bad(where, f"{at}.{missing[0]}", "missing")
    key_id = entry["id"]
    try:
        check_key_id(key_id if isinstance(key_id, str) else "")
    except ValueError as exc:
        raise _bad(where, f"{at}.id", str(exc)) from None
    created = entry["created"]
    try:
        when = datetime.fromisoformat(created) if isinstance(created, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise _bad(where, f"{at}.created", "must be a UTC time such as 2025-01-02T09:00:00Z")
    if provider == "file":
        material = _base64(entry["material"], where, f"{at}.material")
        if len(material) != KEY_BYTES:
            raise _bad(where, f"{at}.material", f"must be base64 of {KEY_BYTES} bytes "
                       f"(is {len(material)})")
        return KeyRecord(key_id, when, material=material)
    kms_key_id = entry["kms_key_id"]
    if not isinstance(kms_key_id, str) or not kms_key_id:
        raise _bad(where, f"{at}.kms_key_id", "must name the KMS key that wrapped this key")
    wrapped = _base64(entry["wrapped"], where, f"{at}.wrapped")
    return KeyRecord(key_id, when, wrapped=wrapped, kms_key_id=kms_key_id)


def _base64(value: Any, where: str, at: str) -> bytes:
    try:
        if not isinstance(value, str) or not value:
            raise ValueError
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise _bad(where, at, "must be base64 text") from None


def _bad(where: str, at: str, what: str) -> EncryptionError:
    return EncryptionError(f"key file {where}: {at or '(top level)'}: {what}: restore it "
                           "from its backup, or fix it by hand")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for changing ``path`` (``<path>.lock`` beside it, 0600).

    Two ``hl7gw keys rotate`` runs at once would otherwise each read the file, add a key
    and rename: the second rename would drop the first one's key, and any record the
    gateway sealed with it in between could never be read again.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path.with_name(path.name + ".lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise EncryptionError(f"cannot lock key file {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, mode 0600: the old content or the new, never half.

    A temporary file in the same folder is created 0600 (``os.open``, so the key is never
    readable by others, not even for a moment), written, fsynced, renamed over ``path``;
    then the folder is fsynced so the rename itself survives a power cut.
    """
    folder = path.parent
    tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    created = replaced = False
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        created = True
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        replaced = True
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException as exc:
        if created and not replaced:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            state = ("written, but its folder could not be synced: check the disk" if replaced
                     else "the file is as it was before")
            raise EncryptionError(f"cannot write key file {path}: {exc.strerror or exc} "
                                  f"({state})") from None
        raise
