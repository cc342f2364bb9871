"""Listener connection settings: CIDRs, TLS files, errors as ``file:line: field: message``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import ListenerSettings, load_settings
from gateway.errors import ConfigError
from gateway.mllp.settings import TlsSettings, allowed

CONFIG = """\
kafka:
  bootstrap_servers: localhost:9092
listeners:
  - name: lab
    port: 2575
{extra}
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.format(extra=extra))
    return path


def test_defaults() -> None:
    listener = ListenerSettings()
    assert listener.tls is None and listener.allow == []
    assert listener.idle_timeout_s == 300 and listener.frame_timeout_s == 30
    assert listener.keepalive and listener.max_connections_per_ip is None


def test_cidrs_are_normalised() -> None:
    listener = ListenerSettings(allow=["10.0.0.0/8", "127.0.0.1", "::1/128"])
    assert listener.allow == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]


def test_bad_cidr_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "    allow: [10.0.0.0/8, 10.0.0.300/32]")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert str(err.value).startswith(f"{path}:6: listeners[0].allow: ")
    assert "10.0.0.300/32" in str(err.value)


def test_cidr_with_host_bits_is_refused() -> None:
    with pytest.raises(ValidationError, match="host bits set"):
        ListenerSettings(allow=["10.0.0.1/8"])


def test_missing_certificate_file_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, f"    tls:\n      certfile: {tmp_path}/nope.pem\n"
                           f"      keyfile: {tmp_path}/nope.key")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"{path}:7: listeners[0].tls.certfile: ")
    assert "file not found" in lines[0]
    assert lines[1].startswith(f"{path}:8: listeners[0].tls.keyfile: ")


def test_client_cert_requirement_needs_a_ca(tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    pem.write_text("not a certificate")
    with pytest.raises(ValidationError, match="require_client_cert needs cafile"):
        TlsSettings(certfile=pem, keyfile=pem, require_client_cert=True)


def test_unloadable_certificate_is_refused_at_load(tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    pem.write_text("not a certificate")
    with pytest.raises(ValidationError, match="cannot load certificate"):
        TlsSettings(certfile=pem, keyfile=pem)


@pytest.mark.parametrize("field", ["max_connections", "max_connections_per_ip",
                                   "idle_timeout_s", "frame_timeout_s"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError):
        ListenerSettings(**{field: 0})


@pytest.mark.parametrize(("address", "networks", "ok"), [
    ("10.1.2.3", ["10.0.0.0/8"], True),
    ("11.1.2.3", ["10.0.0.0/8"], False),
    ("::ffff:10.1.2.3", ["10.0.0.0/8"], True),
    ("::1", ["127.0.0.1/32"], False),
    ("fe80::1%eth0", ["fe80::/10"], True),
    ("anything", [], True),
    ("not-an-ip", ["10.0.0.0/8"], False),
])
def test_allowed(address: str, networks: list[str], ok: bool) -> None:
    import ipaddress

    assert allowed(address, [ipaddress.ip_network(n) for n in networks]) is ok
