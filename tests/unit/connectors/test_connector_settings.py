"""Connector settings: defaults, unknown keys refused, security combinations checked."""

from __future__ import annotations

import ssl

import pytest
from pydantic import BaseModel, ValidationError

from connectors.settings import BridgeSettings, FunctionSettings, KafkaSettings

TYPOS: list[tuple[type[BaseModel], dict[str, object]]] = [
    (KafkaSettings, {"bootstrap_servers": "127.0.0.1:9092", "linger": 5}),
    (BridgeSettings, {"target_url": "http://127.0.0.1:8080/events", "max_attempt": 3}),
    (FunctionSettings, {"prot": 8080}),
]


@pytest.mark.parametrize(("model", "data"), TYPOS, ids=["kafka", "bridge", "function"])
def test_unknown_keys_are_refused(model: type[BaseModel], data: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate(data)


def test_kafka_defaults() -> None:
    s = KafkaSettings(bootstrap_servers="127.0.0.1:9092")
    assert (s.topic, s.client_id, s.linger_ms, s.request_timeout_ms) == (
        "hl7.fhir", "hl7gw", 5, 30000)
    assert s.client_options() == {"bootstrap_servers": "127.0.0.1:9092", "client_id": "hl7gw",
                                  "request_timeout_ms": 30000,
                                  "security_protocol": "PLAINTEXT"}


def test_sasl_needs_its_fields_and_hides_the_password() -> None:
    with pytest.raises(ValidationError, match="needs sasl_mechanism"):
        KafkaSettings(bootstrap_servers="b:9092", security_protocol="SASL_PLAINTEXT")
    s = KafkaSettings(bootstrap_servers="b:9092", security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="SCRAM-SHA-512", sasl_username="gw",
                      sasl_password="s3cret")  # type: ignore[arg-type]
    assert "s3cret" not in repr(s)
    options = s.client_options()
    assert options["sasl_plain_password"] == "s3cret"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"


def test_sasl_fields_without_sasl_protocol_are_refused() -> None:
    with pytest.raises(ValidationError, match="need a SASL_"):
        KafkaSettings(bootstrap_servers="b:9092", sasl_username="gw")
    with pytest.raises(ValidationError, match="ssl_"):
        KafkaSettings(bootstrap_servers="b:9092", ssl_cafile="/ca.pem")


def test_ssl_builds_a_verifying_context() -> None:
    s = KafkaSettings(bootstrap_servers="b:9093", security_protocol="SSL")
    context = s.client_options()["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_bridge_defaults_and_dlq_topic() -> None:
    s = BridgeSettings(target_url="https://fn.example/events")
    assert s.topic == "hl7.fhir"
    assert s.dlq_topic == "hl7.fhir.dlq"
    assert s.max_attempts == 5
    custom = BridgeSettings.model_validate({"topic": "adt", "target_url": "http://h/e"})
    assert custom.dlq_topic == "adt.dlq"
    off = BridgeSettings.model_validate({"target_url": "http://h/e", "dlq_topic": None})
    assert off.dlq_topic is None


@pytest.mark.parametrize("url", ["ftp://h/e", "h/e", "http://", "/events"])
def test_bridge_target_must_be_http(url: str) -> None:
    with pytest.raises(ValidationError, match="target_url"):
        BridgeSettings(target_url=url)


def test_bridge_headers_are_secret_and_cannot_replace_ours() -> None:
    s = BridgeSettings.model_validate({"target_url": "http://h/e",
                                       "headers": {"x-api-key": "k-123"}})
    assert "k-123" not in repr(s)
    assert s.headers["x-api-key"].get_secret_value() == "k-123"
    for name in ("Idempotency-Key", "ce-id", "Content-Type"):
        with pytest.raises(ValidationError, match="set by the bridge"):
            BridgeSettings.model_validate({"target_url": "http://h/e", "headers": {name: "x"}})


def test_bridge_bounds() -> None:
    with pytest.raises(ValidationError, match="backoff_initial_s"):
        BridgeSettings(target_url="http://h/e", backoff_initial_s=10, backoff_max_s=1)
    with pytest.raises(ValidationError, match="dlq_topic must differ"):
        BridgeSettings(target_url="http://h/e", topic="t", dlq_topic="t")
    with pytest.raises(ValidationError):
        BridgeSettings(target_url="http://h/e", max_attempts=0)


def test_settings_are_frozen() -> None:
    s = FunctionSettings()
    with pytest.raises(ValidationError):
        s.port = 1
