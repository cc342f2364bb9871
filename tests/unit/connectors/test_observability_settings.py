"""The bridge's probe port and the tracing section: defaults, and mistakes as file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError

BASE = """\
kafka:
  bootstrap_servers: 127.0.0.1:9092
bridge:
  target_url: http://127.0.0.1:8090/events
"""


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env={})


def test_defaults_probe_on_8081_and_tracing_off(tmp_path: Path) -> None:
    settings = _load(tmp_path, BASE)
    bridge = settings.bridge  # type: ignore[attr-defined]
    assert (bridge.http.enabled, bridge.http.host, bridge.http.port) == (True, "127.0.0.1", 8081)
    tracing = settings.tracing  # type: ignore[attr-defined]
    assert tracing.enabled is False and tracing.sample_ratio == 1.0


def test_a_bad_probe_port_names_file_line_and_field(tmp_path: Path) -> None:
    text = BASE + "  http:\n    host: 0.0.0.0\n    port: 70000\n"
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'gateway.yaml'}:7:")
    assert "bridge.http.port" in message


def test_tracing_mistakes_name_file_line_and_field(tmp_path: Path) -> None:
    text = BASE + "tracing:\n  enabled: true\n  sample_ratio: 1.5\n"
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert str(caught.value).startswith(f"{tmp_path / 'gateway.yaml'}:7:")
    assert "tracing.sample_ratio" in str(caught.value)
    text = BASE + "tracing:\n  enabled: true\n  endpoint: collector:4318\n"
    with pytest.raises(ConfigError, match=r":7: tracing.endpoint: .*http"):
        _load(tmp_path, text)


def test_tracing_headers_stay_secret(tmp_path: Path) -> None:
    text = BASE + ("tracing:\n  enabled: true\n  endpoint: https://otel.example/v1/traces\n"
                   "  headers: {api-key: s3cret}\n")
    settings = _load(tmp_path, text)
    tracing = settings.tracing  # type: ignore[attr-defined]
    assert "s3cret" not in repr(tracing)
    assert tracing.headers["api-key"].get_secret_value() == "s3cret"


def test_the_bridge_may_not_set_the_trace_headers_itself(tmp_path: Path) -> None:
    text = BASE + "  headers: {traceparent: 00-abc}\n"
    with pytest.raises(ConfigError, match="traceparent"):
        _load(tmp_path, text)
