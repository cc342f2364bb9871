"""The gateway says whether its mapper runs compiled: log, metric and /readyz detail."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import generate_latest

import gateway.service as service
from connectors.settings import KafkaSettings
from gateway.config import GatewaySettings, HttpSettings, ListenerSettings, SpoolSettings


def _settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(listeners=[ListenerSettings(name="t", port=0)],
                           http=HttpSettings(port=0),
                           spool=SpoolSettings(path=tmp_path / "spool.db"),
                           kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1", topic="t"))


@pytest.mark.parametrize(("build", "label", "level"), [
    ("compiled (mypyc)", "compiled", logging.INFO),
    ("pure Python (HL7GW_PURE_PYTHON is set)", "pure", logging.WARNING),
])
def test_the_mapper_build_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture, build: str,
                                      label: str, level: int) -> None:
    monkeypatch.setattr(service, "mapper_status", lambda: build)
    gateway = service.GatewayService(_settings(tmp_path), http=False)
    with caplog.at_level(logging.INFO, logger="hl7gw.service"):
        gateway._note_mapper_build()
    assert gateway.mapper_build == build
    text = generate_latest(gateway.registry).decode()
    assert f'hl7gw_mapper_info{{build="{label}",detail="{build}"}} 1.0' in text
    assert [r.levelno for r in caplog.records if r.name == "hl7gw.service"] == [level]
