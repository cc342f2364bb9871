"""One trace from the MLLP frame to the function, over real sockets, Kafka and uvicorn.

Tracing is turned on with an in-memory exporter for the whole process (gateway, bridge and
function share it here, as they share one trace); the spans are then read back: one trace
id, each hop the child of the one before, the Kafka record carrying the publish span as
its ``traceparent`` extension, and not one attribute with a name, an identifier or a body
from the sample message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from connectors import tracing
from connectors.bridge import Bridge
from gateway.config import GatewaySettings, ScaleOutSettings
from gateway.mllp.client import MllpClient, split_messages
from gateway.scaleout import MapperService
from gateway.service import GatewayService
from tests.integration.conftest import RunningServer, bounded
from tests.integration.test_end_to_end import function_events, read_topic
from tests.support import SAMPLES

pytestmark = pytest.mark.integration

A01 = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
HOPS = ("hl7gw.mllp.frame", "hl7gw.spool.commit", "hl7gw.map", "hl7gw.kafka.publish",
        "hl7gw.bridge.deliver", "hl7gw.function.event")
# From the sample's PID: identifiers (MRN, SSN, enterprise id, account), names, birth
# date, address, phone, e-mail; and segment ids, which only a body would contain.
PHI = ("4820017", "900112233", "E77123", "Everyman", "Adam", "Smith", "Eve^", "19800614",
       "Home Street", "48104", "5551234", "adam.everyman", "PID|", "EVN|", "Bundle")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(None, service_name="hl7gw-test", exporter=exporter)
    yield exporter
    tracing.shutdown()


async def _traced_run(settings: GatewaySettings, function: RunningServer,
                      exporter: InMemorySpanExporter, bootstrap: str, topic: str
                      ) -> tuple[list[ReadableSpan], Any]:
    assert settings.bridge is not None
    bridge = Bridge(settings.bridge, settings.kafka)
    bridge_task = asyncio.create_task(bridge.run())
    try:
        async with GatewayService(settings, http=False) as gateway:
            async with MllpClient("127.0.0.1", gateway.listeners[0].port, timeout=30) as client:
                await client.send(A01)
            assert len(await function_events(function.url, expect=1, wait_s=60)) == 1
            [record] = await read_topic(bootstrap, topic, expect=1, settle=0.2)
            for _ in range(600):  # the bridge's span ends after the function's answer
                if set(HOPS) <= {s.name for s in exporter.get_finished_spans()}:
                    break
                await asyncio.sleep(0.05)
    finally:
        await bridge.stop()
        await asyncio.wait_for(bridge_task, 30)
    return list(exporter.get_finished_spans()), record


@bounded(120)
async def test_one_trace_spans_the_mllp_frame_to_the_function(
        spans: InMemorySpanExporter, gateway_settings: GatewaySettings,
        function_server: RunningServer, kafka_bootstrap: str, kafka_topic: str) -> None:
    finished, record = await _traced_run(gateway_settings, function_server, spans,
                                         kafka_bootstrap, kafka_topic)
    assert set(HOPS) <= {s.name for s in finished}
    assert len({s.context.trace_id for s in finished}) == 1  # from the frame to the function
    by_id = {s.context.span_id: s for s in finished}
    [frame] = [s for s in finished if s.name == "hl7gw.mllp.frame"]
    assert frame.parent is None
    # A failed first send (a topic being created) adds a map and a publish span: every
    # span of a name has the same parent, and the delivered record names its own.
    for name in ("hl7gw.spool.commit", "hl7gw.map", "hl7gw.kafka.publish"):
        for span in (s for s in finished if s.name == name):
            assert span.parent is not None and span.parent.span_id == frame.context.span_id
    [function_span] = [s for s in finished if s.name == "hl7gw.function.event"]
    path = [function_span]
    while path[-1].parent is not None:
        path.append(by_id[path[-1].parent.span_id])
    assert [s.name for s in path] == ["hl7gw.function.event",  # W3C header from the bridge
                                      "hl7gw.bridge.deliver",  # the record's extension
                                      "hl7gw.kafka.publish",  # the spool row's traceparent
                                      "hl7gw.mllp.frame"]
    publish = path[2]
    headers = {k: v.decode() for k, v in record.headers}
    version, trace_id, span_id, flags = headers["ce_traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{publish.context.trace_id:032x}",
                                            f"{publish.context.span_id:016x}")
    assert int(flags, 16) & 1  # sampled
    attrs = publish.attributes or {}
    assert attrs["messaging.destination.name"] == kafka_topic
    assert attrs["messaging.kafka.offset"] == record.offset
    assert attrs["cloudevents.event_id"] == headers["ce_id"]
    assert (frame.attributes or {})["hl7gw.ack_code"] == "CA"
    assert (function_span.attributes or {})["hl7gw.outcome"] == "accepted"
    [commit] = [s for s in finished if s.name == "hl7gw.spool.commit"]
    assert (commit.attributes or {})["hl7gw.control_id"] == \
        A01.split(b"\r")[0].split(b"|")[9].decode()


@bounded(120)
async def test_no_span_carries_phi_from_the_message(
        spans: InMemorySpanExporter, gateway_settings: GatewaySettings,
        function_server: RunningServer, kafka_bootstrap: str, kafka_topic: str) -> None:
    finished, _ = await _traced_run(gateway_settings, function_server, spans,
                                    kafka_bootstrap, kafka_topic)
    assert set(HOPS) <= {s.name for s in finished}
    for span in finished:
        said = [span.name, span.status.description or ""]
        said += [f"{k}={v!r}" for k, v in (span.attributes or {}).items()]
        said += [f"{e.name} {dict(e.attributes or {})}" for e in span.events]
        said += [f"{k}={v!r}" for k, v in span.resource.attributes.items()]
        text = "\n".join(said)
        leaked = [phi for phi in PHI if phi in text]
        assert leaked == [], f"{span.name} carries {leaked}: {text}"
        assert set(span.attributes or {}) <= tracing.ALLOWED_ATTRIBUTES


@bounded(150)
async def test_in_scale_out_mode_the_trace_goes_through_the_mapper(
        spans: InMemorySpanExporter, gateway_settings: GatewaySettings,
        function_server: RunningServer, kafka_bootstrap: str, kafka_topic: str) -> None:
    """Raw record (publish span) -> ``hl7gw mapper`` (map span) -> FHIR record -> bridge."""
    scale_out = ScaleOutSettings(raw_topic=f"{kafka_topic}.raw", group_id=f"m-{kafka_topic}")
    settings = gateway_settings.model_copy(update={"scale_out": scale_out})
    mapper = MapperService(scale_out, settings.kafka)
    mapper_task = asyncio.create_task(mapper.run())
    try:
        finished, record = await _traced_run(settings, function_server, spans,
                                             kafka_bootstrap, kafka_topic)
    finally:
        mapper.request_stop()
        await asyncio.wait_for(mapper_task, 60)
    assert len({s.context.trace_id for s in finished}) == 1
    by_id = {s.context.span_id: s for s in finished}

    def chain(span: ReadableSpan) -> list[str]:
        names = [span.name]
        while span.parent is not None:
            span = by_id[span.parent.span_id]
            names.append(span.name)
        return names

    [function_span] = [s for s in finished if s.name == "hl7gw.function.event"]
    assert chain(function_span) == ["hl7gw.function.event", "hl7gw.bridge.deliver",
                                    "hl7gw.map", "hl7gw.kafka.publish", "hl7gw.mllp.frame"]
    def parent(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None
        return by_id[span.parent.span_id]

    mapped = parent(parent(function_span))
    raw_publish = parent(mapped)
    assert (raw_publish.attributes or {})["messaging.destination.name"] == scale_out.raw_topic
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["ce_traceparent"].split("-")[2] == f"{mapped.context.span_id:016x}"
