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
    by_name = {s.name: s for s in finished}
    assert set(HOPS) <= set(by_name)
    trace_ids = {s.context.trace_id for s in finished}
    assert len(trace_ids) == 1  # one trace, from the frame to the function

    def parent_of(name: str) -> str:
        parent = by_name[name].parent
        assert parent is not None, name
        [found] = [s.name for s in finished if s.context.span_id == parent.span_id]
        return found

    frame = by_name["hl7gw.mllp.frame"]
    assert frame.parent is None
    assert parent_of("hl7gw.spool.commit") == "hl7gw.mllp.frame"
    assert parent_of("hl7gw.map") == "hl7gw.mllp.frame"  # via the spool row's traceparent
    assert parent_of("hl7gw.kafka.publish") == "hl7gw.mllp.frame"
    assert parent_of("hl7gw.bridge.deliver") == "hl7gw.kafka.publish"  # via the record
    assert parent_of("hl7gw.function.event") == "hl7gw.bridge.deliver"  # W3C header

    publish = by_name["hl7gw.kafka.publish"].context
    headers = {k: v.decode() for k, v in record.headers}
    version, trace_id, span_id, flags = headers["ce_traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{publish.trace_id:032x}",
                                            f"{publish.span_id:016x}")
    assert int(flags, 16) & 1  # sampled
    attrs = by_name["hl7gw.kafka.publish"].attributes or {}
    assert attrs["messaging.destination.name"] == kafka_topic
    assert attrs["messaging.kafka.offset"] == record.offset
    assert attrs["cloudevents.event_id"] == headers["ce_id"]
    assert (by_name["hl7gw.mllp.frame"].attributes or {})["hl7gw.ack_code"] == "CA"
    assert (by_name["hl7gw.function.event"].attributes or {})["hl7gw.outcome"] == "accepted"
    assert (by_name["hl7gw.spool.commit"].attributes or {})["hl7gw.control_id"] == \
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
    [raw_publish] = [s for s in finished if s.name == "hl7gw.kafka.publish"]
    assert (raw_publish.attributes or {})["messaging.destination.name"] == scale_out.raw_topic
    headers = {k: v.decode() for k, v in record.headers}
    [mapped] = [s for s in finished if s.name == "hl7gw.map"]
    assert headers["ce_traceparent"].split("-")[2] == f"{mapped.context.span_id:016x}"
