"""Config values read from the environment or a file: ``${env:NAME}`` and ``${file:PATH}``.

Secrets (the Kafka SASL password, an OIDC client secret, API keys, console token hashes)
need not be written in the config file: a value that is exactly ``${env:NAME}`` is the
environment variable ``NAME``, and exactly ``${file:PATH}`` is the content of that file
(one trailing newline removed; a relative path is relative to the directory ``hl7gw``
starts in, like every other path in the config). So the config can live in a ConfigMap
or the image while a Kubernetes Secret is mounted as files
(``${file:/etc/hl7gw/secrets/kafka-password}``) or passed as environment variables.

Why a reference in the value rather than ``*_file`` keys or a secrets directory searched
by key name: it works the same for every field, including the entries of lists (each
console user's ``token_sha256``) and the bridge's ``headers``, without adding a key per
secret; and the file says where each value comes from, so nothing is taken implicitly.

Only a whole value is replaced (no interpolation inside text), and a value that looks
like a reference but is not one of the two forms is refused, so a typo such as
``${KAFKA_PASSWORD}`` is not sent to Kafka as a password. Errors name the file, the line
and the field, never the value read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from hl7gw.yamlfile import Loc, YamlDocument, field_name

MAX_SECRET_BYTES = 64 * 1024  # a secret file is small; a bigger one is the wrong file
_REFERENCE = re.compile(r"\$\{(?P<kind>[^:}]*):(?P<name>[^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def resolve_references(doc: YamlDocument, env: Mapping[str, str]) -> Any:
    """A copy of ``doc.data`` with every ``${env:...}`` / ``${file:...}`` value read."""

    def walk(value: Any, at: Loc) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*at, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*at, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
            return _read(value, env, f"{doc.where}:{doc.line(at)}: {field_name(at)}")
        return value

    return walk(doc.data, ())


def _read(ref: str, env: Mapping[str, str], where: str) -> str:
    match = _REFERENCE.fullmatch(ref)
    kind = match["kind"] if match else ""
    name = match["name"].strip() if match else ""
    if kind == "env" and _ENV_NAME.fullmatch(name):
        value = env.get(name)
        if value is None:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        if not value:
            raise ConfigError(f"{where}: environment variable {name} is empty")
        return value
    if kind == "file" and name:
        return _read_file(Path(name).expanduser(), where)
    raise ConfigError(f"{where}: {ref!r} is not a reference this config understands: "
                      "write ${env:NAME} or ${file:PATH}")


def _read_file(path: Path, where: str) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SECRET_BYTES:
        raise ConfigError(f"{where}: {path} is over {MAX_SECRET_BYTES // 1024} KiB: "
                          "not a secret file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path} is not UTF-8 text") from None
    # `echo secret > file` and most editors end the file with a newline; it is not part
    # of the secret. One is removed, as Docker and Kubernetes tooling do.
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigError(f"{where}: {path} is empty")
    return text
