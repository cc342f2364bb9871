"""What the bridge's /readyz says: in its group (an empty assignment is a standby) and the
broker answering, asked at most every BROKER_PROBE_S."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from connectors.bridge import Bridge
from connectors.bridge import bridge as bridge_module
from connectors.settings import BridgeSettings, KafkaSettings


class FakeConsumer:
    def __init__(self) -> None:
        self.asked = 0
        self.error: Exception | None = None

    async def topics(self) -> set[str]:
        self.asked += 1
        if self.error is not None:
            raise self.error
        return {"hl7.fhir"}


def bridge() -> Bridge:
    return Bridge(BridgeSettings(target_url="http://127.0.0.1:1/events"),
                  KafkaSettings(bootstrap_servers="127.0.0.1:1"), registry=CollectorRegistry())


async def test_not_ready_before_the_consumer_starts() -> None:
    ready, details = await bridge().readiness()
    assert not ready
    assert details == {"group": "joining", "partitions": [], "kafka": "unreachable",
                       "kafka_detail": "consumer not started"}


async def test_ready_in_the_group_even_with_no_partition() -> None:
    b = bridge()
    consumer = FakeConsumer()
    b._consumer = consumer
    assert (await b.readiness())[0] is False  # the broker answers, but not yet in the group
    b._assignment_changed(set())
    ready, details = await b.readiness()
    assert ready and details["group"] == "joined" and details["partitions"] == []
    b._assignment_changed({TopicPartition("hl7.fhir", 2), TopicPartition("hl7.fhir", 0)})
    assert (await b.readiness())[1]["partitions"] == ["hl7.fhir-0", "hl7.fhir-2"]
    assert b.metrics.assigned._value.get() == 2
    b._assignment_changed(None)  # a rebalance took them away
    assert (await b.readiness())[0] is False
    assert consumer.asked == 1  # asked once: the answer holds for BROKER_PROBE_S


async def test_not_ready_while_the_broker_does_not_answer(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(bridge_module, "BROKER_PROBE_S", 0.0)
    b = bridge()
    consumer = FakeConsumer()
    b._consumer = consumer
    b._assignment_changed(set())
    consumer.error = ConnectionError("refused")
    ready, details = await b.readiness()
    assert not ready
    assert (details["kafka"], details["kafka_detail"]) == ("unreachable", "ConnectionError")
    consumer.error = None
    assert (await b.readiness())[0] is True
