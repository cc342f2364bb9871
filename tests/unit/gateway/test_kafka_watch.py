"""KafkaWatch: the broker's state from probes and publishes, a metric, a repeated warning."""

from __future__ import annotations

import asyncio
import logging

import pytest

from connectors.kafka.errors import KafkaClientError
from gateway.kafka_watch import KafkaWatch
from gateway.metrics import GatewayMetrics
from gateway.spool import Accepted, Spool

PATIENT_NAME = b"DOE^JANE"


class Broker:
    """Stands in for EventProducer.ping in these unit tests: up or down, as set."""

    def __init__(self) -> None:
        self.up = True
        self.started = True

    async def ping(self, within: float) -> None:
        if not self.up:
            raise KafkaClientError("down", retriable=True, cause="KafkaConnectionError")


def accepted(i: int) -> Accepted:
    raw = b"MSH|^~\\&|A|F|R|R|20240601||ADT^A01|M%d|P|2.5\rPID|1||1||" % i + PATIENT_NAME
    return Accepted(listener="l", peer="p", sender="A|F", control_id=f"M{i}",
                    message_type="ADT^A01", sha256=f"s{i}", raw=raw, ack=b"a",
                    event_id=f"e{i}")


def watch(spool: Spool, broker: Broker, **kwargs: float) -> KafkaWatch:
    return KafkaWatch(broker, spool, GatewayMetrics(), **kwargs)  # type: ignore[arg-type]


def up_metric(w: KafkaWatch) -> float | None:
    return w.metrics.registry.get_sample_value("hl7gw_kafka_up")


async def test_probe_sets_state_and_metric(spool: Spool) -> None:
    broker = Broker()
    w = watch(spool, broker)
    assert (w.state, up_metric(w)) == ("connecting", 0)
    await w.check()
    assert (w.state, w.up, up_metric(w)) == ("connected", True, 1)
    broker.up = False
    await w.check()
    assert (w.state, w.up, up_metric(w)) == ("unreachable", False, 0)
    assert w.describe()["error"] == "KafkaConnectionError"
    broker.up = True
    await w.check()
    assert w.state == "connected" and "error" not in w.describe()


async def test_publisher_reports_move_the_state_between_probes(spool: Spool) -> None:
    w = watch(spool, Broker())
    w.succeeded()
    w.failed("KafkaTimeoutError")
    assert (w.state, w.error) == ("unreachable", "KafkaTimeoutError")
    w.succeeded()
    assert w.up


async def test_outage_with_waiting_rows_warns_with_the_oldest_age_and_no_phi(
        spool: Spool, caplog: pytest.LogCaptureFixture) -> None:
    await spool.store(accepted(1))
    await spool.store(accepted(2))
    broker = Broker()
    broker.up = False
    w = watch(spool, broker, warn_interval_s=3600)
    caplog.set_level(logging.INFO, logger="hl7gw.kafka")
    await w.check()
    await w.check()  # within the interval: not repeated
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    record = warnings[0]
    assert record.pending == 2  # type: ignore[attr-defined]
    assert 0 <= record.oldest_pending_age_s < 60  # type: ignore[attr-defined]
    assert record.error_class == "KafkaConnectionError"  # type: ignore[attr-defined]
    text = str(record.__dict__)
    assert "DOE" not in text and "M1" not in text
    age = w.metrics.registry.get_sample_value("hl7gw_oldest_pending_age_seconds")
    assert age is not None and age >= 0


async def test_the_warning_repeats_after_the_interval(
        spool: Spool, caplog: pytest.LogCaptureFixture) -> None:
    await spool.store(accepted(1))
    broker = Broker()
    broker.up = False
    w = watch(spool, broker, warn_interval_s=0.2)
    caplog.set_level(logging.WARNING, logger="hl7gw.kafka")
    await w.check()
    await asyncio.sleep(0.25)
    await w.check()
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 2


async def test_down_with_nothing_waiting_warns_once(
        spool: Spool, caplog: pytest.LogCaptureFixture) -> None:
    broker = Broker()
    broker.up = False
    w = watch(spool, broker, warn_interval_s=0)
    caplog.set_level(logging.WARNING, logger="hl7gw.kafka")
    await w.check()
    await w.check()
    assert w.state == "unreachable"
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.pending == 0  # type: ignore[attr-defined]
    assert warning.oldest_pending_age_s is None  # type: ignore[attr-defined]
    assert w.metrics.registry.get_sample_value("hl7gw_oldest_pending_age_seconds") == 0


async def test_no_probe_and_no_alarm_before_the_producer_started(
        spool: Spool, caplog: pytest.LogCaptureFixture) -> None:
    # At start-up the producer is still connecting: that is not an outage.
    broker = Broker()
    broker.started = False
    w = watch(spool, broker)
    caplog.set_level(logging.WARNING, logger="hl7gw.kafka")
    await w.check()
    assert w.state == "connecting" and not caplog.records
    w.failed("KafkaConnectionError")  # the start attempt failed: that is one
    await w.check()
    assert w.describe()["state"] == "unreachable" and len(caplog.records) == 1
