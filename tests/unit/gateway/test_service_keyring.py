"""The gateway's keyring reload (SIGHUP) when the provider fails: refused, counted and
logged without the material, the keys in use kept; the gateway is not started here."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import gateway.keys.providers as providers
import gateway.service as service
from connectors.settings import KafkaSettings
from gateway.config import GatewaySettings, HttpSettings, ListenerSettings, SpoolSettings
from gateway.keys.manage import init_keys
from gateway.keys.settings import EncryptionSettings


def _settings(tmp_path: Path) -> GatewaySettings:
    keys = EncryptionSettings(provider="file", key_file=tmp_path / "keys.json")
    init_keys(keys)
    return GatewaySettings(listeners=[ListenerSettings(name="t", port=0)],
                           http=HttpSettings(port=0),
                           spool=SpoolSettings(path=tmp_path / "spool.db"),
                           kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1", topic="t"),
                           encryption=keys)


def rejected(gateway: service.GatewayService) -> float:
    return gateway.registry.get_sample_value("hl7gw_keyring_reloads_total",
                                             {"result": "rejected"}) or 0.0


async def test_a_provider_that_raises_anything_leaves_the_keys_in_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    gateway = service.GatewayService(_settings(tmp_path), http=False)
    in_use = gateway.spool.sealer.keyring

    def unreachable(*_: object, **__: object) -> None:
        raise ConnectionError("kms.eu-west-1.amazonaws.com: connection refused")

    monkeypatch.setattr(providers, "load_keyring", unreachable)
    with caplog.at_level(logging.ERROR, logger="hl7gw.service"):
        assert await gateway.reload_keys() is False
    assert gateway.spool.sealer.keyring is in_use and rejected(gateway) == 1
    [record] = [r for r in caplog.records if r.name == "hl7gw.service"]
    assert record.error == "ConnectionError"  # type: ignore[attr-defined]


async def test_a_key_file_that_is_gone_is_refused_with_its_reason(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(tmp_path)
    gateway = service.GatewayService(settings, http=False)
    in_use = gateway.spool.sealer.keyring
    assert settings.encryption is not None
    settings.encryption.key_file.unlink()
    with caplog.at_level(logging.ERROR, logger="hl7gw.service"):
        assert await gateway.reload_keys() is False
    assert gateway.spool.sealer.keyring is in_use and rejected(gateway) == 1
    [record] = [r for r in caplog.records if r.name == "hl7gw.service"]
    assert "keys.json" in record.error  # type: ignore[attr-defined]
