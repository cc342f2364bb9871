"""``hl7gw serve`` with ``tracing.enabled`` sends its spans over OTLP/HTTP from the config.

A small OTLP receiver (uvicorn, ``POST /v1/traces``, protobuf) stands in for a collector;
the gateway runs as the real command, takes two messages, is stopped with SIGTERM, and the
receiver must hold the frame spans, under the configured service name, with the header the
config asked to send.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import bounded, free_port, start_server, stop_server
from tests.support import REPO, SAMPLES

pytestmark = pytest.mark.integration

HL7GW = str(Path(sys.executable).with_name("hl7gw"))


def receiver() -> tuple[FastAPI, list[tuple[dict[str, str], bytes]]]:
    got: list[tuple[dict[str, str], bytes]] = []
    app = FastAPI()

    @app.post("/v1/traces")
    async def traces(request: Request) -> Response:
        got.append((dict(request.headers), await request.body()))
        return Response(ExportTraceServiceRequest().SerializeToString(),
                        media_type="application/x-protobuf")

    return app, got


def published(http: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{http}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "hl7gw_published_total")


def run_gateway(cfg: Path, http: int, mllp: int) -> tuple[int, str]:
    """Start hl7gw serve, send two samples once ready, SIGTERM it: (exit code, stderr)."""
    server = subprocess.Popen([HL7GW, "serve", "--config", str(cfg)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{http}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "gateway never became ready"
            time.sleep(0.1)
        sent = subprocess.run([HL7GW, "send", "--port", str(mllp),
                               str(SAMPLES / "adt_a01.hl7"), str(SAMPLES / "adt_a04.hl7")],
                              capture_output=True, text=True, timeout=60, check=False)
        assert sent.returncode == 0, sent.stderr
        while published(http) < 2:  # both on Kafka: their map and publish spans ended
            assert time.monotonic() < deadline + 60, "the gateway never published both"
            time.sleep(0.1)
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
        return server.returncode, stderr
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@bounded(180)
async def test_serve_exports_its_spans_over_otlp(tmp_path: Path, kafka_bootstrap: str,
                                                  kafka_topic: str) -> None:
    app, got = receiver()
    collector = await start_server(app)
    mllp, http = free_port(), free_port()
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"""\
listeners:
  - name: adt
    port: {mllp}
http:
  port: {http}
spool:
  path: {tmp_path / "spool.db"}
kafka:
  bootstrap_servers: {kafka_bootstrap}
  topic: {kafka_topic}
tracing:
  enabled: true
  endpoint: {collector.url}/v1/traces
  service_name: site-gateway
  headers: {{x-otlp-key: k3y}}
""", encoding="utf-8")
    try:
        code, stderr = await asyncio.to_thread(run_gateway, cfg, http, mllp)
    finally:
        await stop_server(collector)
    assert code == 0, stderr
    assert got, "no OTLP export reached the receiver"
    names: list[str] = []
    services: set[str] = set()
    for headers, body in got:
        assert headers["content-type"] == "application/x-protobuf"
        assert headers["x-otlp-key"] == "k3y"
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            services |= {a.value.string_value for a in resource_spans.resource.attributes
                         if a.key == "service.name"}
            names += [s.name for scope in resource_spans.scope_spans for s in scope.spans]
    assert services == {"site-gateway"}
    assert names.count("hl7gw.mllp.frame") == 2
    assert names.count("hl7gw.spool.commit") == 2
    # both were published before the stop: the map and publish spans too, one per attempt
    # (a new topic may refuse the first send while it is being created)
    assert names.count("hl7gw.map") >= 2 and names.count("hl7gw.kafka.publish") >= 2
    assert b"Everyman" not in b"".join(body for _, body in got)
