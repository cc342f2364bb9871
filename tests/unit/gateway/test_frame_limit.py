"""Intake accepts only what Kafka can take: a listener's frame cap fits max_request_size."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.settings import KafkaSettings
from gateway.config import GatewaySettings, ListenerSettings, load_settings
from gateway.errors import ConfigError


def test_default_frame_cap_is_what_kafka_accepts_by_default() -> None:
    # Issue 16.4: intake took 16 MiB frames while Kafka's default limit is 1 MiB, so a
    # large message got AA and could never be published.
    settings = GatewaySettings(kafka=KafkaSettings(bootstrap_servers="k:9092"))
    assert settings.listeners[0].max_frame_bytes == settings.kafka.max_request_size


def test_a_frame_cap_above_max_request_size_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"listeners\[1\]\.max_frame_bytes \(2097152\) "
                                              r"exceeds kafka\.max_request_size \(1048576\)"):
        GatewaySettings(kafka=KafkaSettings(bootstrap_servers="k:9092"),
                        listeners=[ListenerSettings(name="a"),
                                   ListenerSettings(name="b", port=2576,
                                                    max_frame_bytes=2 * 1024 * 1024)])


def test_raising_both_limits_together_is_accepted() -> None:
    big = 8 * 1024 * 1024
    settings = GatewaySettings(kafka=KafkaSettings(bootstrap_servers="k:9092",
                                                   max_request_size=big),
                               listeners=[ListenerSettings(max_frame_bytes=big)])
    assert settings.listeners[0].max_frame_bytes == big


def test_the_config_file_error_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("listeners:\n  - name: x\n    max_frame_bytes: 16777216\n"
                    "kafka:\n  bootstrap_servers: k:9092\n")
    with pytest.raises(ConfigError, match=r"max\.message\.bytes") as caught:
        load_settings(path, env={})
    assert str(caught.value).startswith(str(path))
