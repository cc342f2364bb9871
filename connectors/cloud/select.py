"""Choosing the function's processor from the environment (the Lambda configuration).

``HL7GW_PROCESSOR``: ``memory`` (default; the sample :class:`MemoryStore`), ``fhir``
(:class:`FhirServerWriter` to ``FHIR_BASE_URL``) or ``alert`` (:class:`VitalSignAlerts`
posting to ``HL7GW_ALERT_SINK_URL``, thresholds from the YAML file
``HL7GW_ALERT_THRESHOLDS`` over the defaults) or ``news2`` (:class:`News2Processor`,
answering with a NEWS2 score; the latest readings kept by ``HL7GW_NEWS2_STORE``:
``memory``, the default, or ``dynamodb`` in the table ``HL7GW_NEWS2_TABLE``; see
docs/news2.md). The only module of ``connectors`` that reads the environment; it runs
once, at import, so clients are built at module scope and reused across warm invocations.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from connectors.cloud.processor import MemoryStore, Processor
from connectors.settings import (
    AlertSettings,
    FhirWriterSettings,
    FunctionSettings,
    TracingSettings,
)

PROCESSORS = ("memory", "fhir", "alert", "news2")
NEWS2_STORES = ("memory", "dynamodb")


def processor_from_env(env: Mapping[str, str],
                       settings: FunctionSettings | None = None) -> Processor:
    """The processor ``HL7GW_PROCESSOR`` names; raises ValueError naming what is missing."""
    kind = env.get("HL7GW_PROCESSOR", "memory").strip().lower() or "memory"
    if kind == "memory":
        return MemoryStore((settings or FunctionSettings()).max_events)
    # The fhir and alert processors are imported only when chosen: with them, httpx, tenacity
    # and the YAML loader, a third of the function's import time on a cold start.
    if kind == "fhir":
        from connectors.cloud.fhir_writer import FhirServerWriter

        return FhirServerWriter(FhirWriterSettings(base_url=_required(env, "FHIR_BASE_URL")))
    if kind == "alert":
        from connectors.cloud.alerts import HttpAlertSink, VitalSignAlerts, load_thresholds

        alert = AlertSettings(sink_url=_required(env, "HL7GW_ALERT_SINK_URL"))
        path = env.get("HL7GW_ALERT_THRESHOLDS")
        thresholds = load_thresholds(Path(path)) if path else None
        return VitalSignAlerts(HttpAlertSink(alert.sink_url, timeout_s=alert.timeout_s),
                               thresholds, source=alert.source)
    if kind == "news2":
        return _news2(env)
    raise ValueError(f"HL7GW_PROCESSOR={kind!r}: choose one of {', '.join(PROCESSORS)}")


def _news2(env: Mapping[str, str]) -> Processor:
    """The NEWS2 processor and its vitals store (boto3 is imported only for dynamodb)."""
    from connectors.cloud.news2_processor import News2Processor
    from connectors.cloud.news2_state import DynamoDbVitalsStore, MemoryVitalsStore

    store = env.get("HL7GW_NEWS2_STORE", "memory").strip().lower() or "memory"
    if store == "memory":
        return News2Processor(MemoryVitalsStore())
    if store == "dynamodb":
        return News2Processor(DynamoDbVitalsStore(_required(env, "HL7GW_NEWS2_TABLE")))
    raise ValueError(f"HL7GW_NEWS2_STORE={store!r}: choose one of {', '.join(NEWS2_STORES)}")


def tracing_from_env(env: Mapping[str, str]) -> TracingSettings:
    """``HL7GW_TRACING=on`` turns the function's tracing on (docs/observability.md).

    Where spans go is OpenTelemetry's own variables: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
    (or ``OTEL_EXPORTER_OTLP_ENDPOINT``), ``OTEL_EXPORTER_OTLP_HEADERS``.
    """
    value = env.get("HL7GW_TRACING", "").strip().lower()
    if value not in ("", "off", "false", "0", "on", "true", "1"):
        raise ValueError(f"HL7GW_TRACING={value!r}: say on or off")
    return TracingSettings(enabled=value in ("on", "true", "1"),
                           service_name=env.get("OTEL_SERVICE_NAME") or None)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ValueError(f"{name} must be set for HL7GW_PROCESSOR={env.get('HL7GW_PROCESSOR')}")
    return value
