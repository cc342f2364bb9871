"""Outbound over mutual TLS: the destination is another gateway's MLLP listener that
requires a client certificate from its CA (certificates made at test time)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from connectors.kafka import EventProducer
from connectors.results import publish_result
from connectors.settings import KafkaSettings
from gateway.config import GatewaySettings, HttpSettings, ListenerSettings, SpoolSettings
from gateway.outbound.settings import ClientTlsSettings, DestinationSettings, OutboundSettings
from gateway.service import GatewayService
from tests.integration.test_mllp_tls import Pki, make_pki, server_tls
from tests.support.outbound import cause, result

pytestmark = pytest.mark.integration


def sender(tmp_path: Path, bootstrap: str, topic: str, port: int,
           tls: ClientTlsSettings) -> GatewaySettings:
    return GatewaySettings(
        listeners=[ListenerSettings(name="in", port=0)], http=HttpSettings(port=0),
        spool=SpoolSettings(path=tmp_path / "sender.db"),
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic=f"{topic}.in"),
        outbound=OutboundSettings(topic=topic, group_id=f"g-{topic}", destinations=[
            DestinationSettings(name="ehr", host="127.0.0.1", port=port, tls=tls,
                                ack_timeout_s=5, backoff_initial_s=0.05, backoff_max_s=0.3)]))


async def test_results_go_over_mutual_tls_and_a_missing_client_cert_is_refused(
        tmp_path: Path, kafka_bootstrap: str, kafka_topic: str) -> None:
    pki: Pki = await asyncio.to_thread(make_pki, tmp_path)
    ehr = GatewaySettings(
        listeners=[ListenerSettings(name="ehr", port=0, tls=server_tls(pki, mutual=True))],
        http=HttpSettings(port=0), spool=SpoolSettings(path=tmp_path / "ehr.db"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=f"{kafka_topic}.ehr"))
    async with GatewayService(ehr, http=False) as receiving:
        port = receiving.listeners[0].port
        async with EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap)) as producer:
            await publish_result(producer, cause(1), result(1), topic=kafka_topic)
            await publish_result(producer, cause(2), result(2), topic=f"{kafka_topic}.nocert")

        with_cert = ClientTlsSettings(cafile=pki.ca, certfile=pki.client_cert,
                                      keyfile=pki.client_key)
        async with GatewayService(sender(tmp_path, kafka_bootstrap, kafka_topic, port,
                                         with_cert), http=False) as gw:
            deadline = time.monotonic() + 60
            while True:
                rows = await gw.spool.find_outbound()
                if rows and rows[0].status == "sent":
                    break
                assert time.monotonic() < deadline, rows
                await asyncio.sleep(0.05)
            assert rows[0].ack_code == "AA"
        stored = await receiving.spool.find_outbound()  # it is a listener: inbound rows
        assert stored == []
        assert receiving.registry.get_sample_value(
            "hl7gw_acks_total", {"listener": "ehr", "code": "AA", "sender": "other"}) == 1

        no_cert = ClientTlsSettings(cafile=pki.ca)
        settings = sender(tmp_path / "x", kafka_bootstrap, f"{kafka_topic}.nocert", port,
                          no_cert)
        async with GatewayService(settings, http=False) as gw:
            deadline = time.monotonic() + 60
            while (gw.registry.get_sample_value(
                    "hl7gw_outbound_retries_total",
                    {"destination": "ehr", "reason": "connection"}) or 0) < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            [row] = await gw.spool.find_outbound()
            assert row.status == "queued" and row.ack_code is None  # never credited
