"""connectors.tracing: nothing while off, only allowed attributes while on, and the W3C
traceparent that links the hops."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from connectors import tracing
from connectors.errors import ConnectorError
from connectors.settings import TracingSettings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    found = InMemorySpanExporter()
    tracing.configure(None, service_name="hl7gw-test", exporter=found)
    yield found
    tracing.shutdown()


def test_off_by_default_every_helper_is_a_no_op() -> None:
    assert not tracing.configure(TracingSettings(), service_name="x")
    assert not tracing.enabled()
    with tracing.span("s", attributes={"hl7gw.event_id": "e"}) as current:
        assert current is None
        assert tracing.current_traceparent() is None
        assert tracing.http_headers() == {}
    started = tracing.start("s")
    assert started is None
    tracing.set_attributes(started, {"hl7gw.outcome": "x"})
    tracing.end(started, error="boom")


def _loaded(statement: str, **env: str) -> list[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True,
                          env={**{k: v for k, v in os.environ.items()
                                  if not k.startswith(("HL7GW_", "OTEL_"))}, **env})
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_the_sdk_is_imported_only_when_tracing_is_turned_on() -> None:
    off = _loaded("import connectors.cloud, gateway.service, gateway.cli")
    assert not [m for m in off if m.startswith("opentelemetry.sdk")]
    on = _loaded("import connectors.cloud; from connectors import tracing; "
                 "assert tracing.enabled(); tracing.shutdown()", HL7GW_TRACING="on",
                 OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:9/v1/traces")
    assert "opentelemetry.sdk.trace" in on
    assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in on


def test_a_span_keeps_only_allowed_attributes(exporter: InMemorySpanExporter) -> None:
    with tracing.span("hl7gw.test", attributes={"hl7gw.event_id": "e-1",
                                                "patient.name": "Everyman^Adam",
                                                "hl7gw.message_type": None}) as current:
        tracing.set_attributes(current, {"hl7gw.outcome": "ok", "body": "PID|1||4820017"})
    [span] = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {"hl7gw.event_id": "e-1", "hl7gw.outcome": "ok"}


def test_an_exception_is_recorded_by_its_class_never_its_message(
        exporter: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError), tracing.span("hl7gw.test"):
        raise ValueError("PID|1||4820017^^^GOODHEALTH||Everyman^Adam")
    [span] = exporter.get_finished_spans()
    assert span.status.description == "ValueError"
    assert (span.attributes or {})["hl7gw.error_class"] == "ValueError"
    assert "4820017" not in repr(span.to_json())


def test_traceparent_links_a_child_across_a_hop(exporter: InMemorySpanExporter) -> None:
    with tracing.span("first") as first:
        sent = tracing.http_headers()["traceparent"]
        assert sent == tracing.traceparent_of(first) == tracing.current_traceparent()
    later = tracing.start("second", kind="consumer", parent=sent)
    tracing.end(later, error="dead_lettered")
    first_span, second_span = exporter.get_finished_spans()
    assert second_span.parent is not None
    assert second_span.parent.span_id == first_span.context.span_id
    assert second_span.context.trace_id == first_span.context.trace_id
    version, trace_id, span_id, _ = sent.split("-")
    assert (version, int(trace_id, 16), int(span_id, 16)) == (
        "00", first_span.context.trace_id, first_span.context.span_id)


def test_tracing_on_without_opentelemetry_is_one_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(ConnectorError, match=r"hl7gw\[tracing\]"):
        tracing.configure(TracingSettings(enabled=True), service_name="x")
    assert not tracing.enabled()


def test_function_tracing_setting_from_the_environment() -> None:
    from connectors.cloud import tracing_from_env

    assert tracing_from_env({}).enabled is False
    assert tracing_from_env({"HL7GW_TRACING": "on", "OTEL_SERVICE_NAME": "fn"}) == \
        TracingSettings(enabled=True, service_name="fn")
    with pytest.raises(ValueError, match="HL7GW_TRACING"):
        tracing_from_env({"HL7GW_TRACING": "yes please"})


def test_a_lambda_invocation_leaves_no_span_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans are exported before the handler returns: Lambda freezes the process then, and
    the batch processor's timer (5 s) would not run until a next invocation, if any."""
    from connectors.cloud import create_app, make_handler
    from tests.unit.connectors.test_lambda_handler import Context, cloud_event

    exporter = InMemorySpanExporter()
    monkeypatch.setattr(tracing, "_otlp_exporter", lambda settings: exporter)
    assert tracing.configure(TracingSettings(enabled=True), service_name="fn")
    try:
        handler = make_handler(create_app())
        event = cloud_event("evt-lambda")
        record = {"topic": "t", "partition": 0, "offset": 1, "timestamp": 0,
                  "key": base64.b64encode(event.key or b"").decode(),
                  "value": base64.b64encode(event.data).decode(),
                  "headers": [{k: list(v)} for k, v in event.kafka_headers()]}
        answer = handler({"eventSource": "aws:kafka", "records": {"t-0": [record]}},
                         Context())
        assert answer == {"batchItemFailures": []}
        assert [s.name for s in exporter.get_finished_spans()] == ["hl7gw.function.event"]
    finally:
        tracing.shutdown()
