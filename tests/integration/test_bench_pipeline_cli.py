"""``hl7gw bench pipeline`` against the real broker: every message published exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "adt_a01.hl7"


def test_300_messages_are_acked_published_and_read_back_once(
        kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    out = CliRunner().invoke(main, ["bench", "pipeline", "-n", "300", "--connections", "4",
                                    "--sample", str(SAMPLE), "--json"])
    assert out.exit_code == 0, out.output
    figures = json.loads(out.stdout)
    assert (figures["messages"], figures["acked"], figures["published"]) == (300, 300, 300)
    assert (figures["failed"], figures["missing"], figures["duplicates"]) == (0, 0, 0)
    assert figures["records"] == 300  # the warm-up's records are on the topic, not counted
    assert figures["broker_timestamps"] == "log-append"
    assert figures["ack_msg_per_s"] > 0 and figures["published_msg_per_s"] > 0
    assert 0 < figures["lag_p50_ms"] <= figures["lag_p99_ms"] <= figures["lag_max_ms"]
    assert 0 < figures["broker_lag_p50_ms"] <= figures["broker_lag_p99_ms"]
    # the broker appends a record before it acks it, and a row is marked after the ack
    # (one clock; the broker's is in whole milliseconds)
    assert figures["broker_lag_p99_ms"] <= figures["lag_p99_ms"] + 1
    assert figures["gateway_cpu_us_per_msg"] > 0 and figures["senders_cpu_us_per_msg"] > 0
    # The test broker runs on this machine: its CPU is found through its listening port.
    assert figures["broker_cpu_us_per_msg"] is not None
    parts = ("gateway", "mapping", "senders", "broker")
    assert figures["total_cpu_us_per_msg"] == pytest.approx(
        sum(figures[f"{p}_cpu_us_per_msg"] for p in parts), abs=0.5)
    assert 0 < figures["cpu_bound_msg_per_s"] <= 1e6 / figures["gateway_cpu_us_per_msg"] + 1
