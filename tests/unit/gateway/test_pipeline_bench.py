"""``hl7gw bench pipeline``'s accounting, on records whose figures are known."""

from __future__ import annotations

import pytest

from gateway.mllp.client import split_messages
from gateway.pipeline_bench import PATIENTS, control_id, numbered
from gateway.pipeline_figures import Acked, Record, Settled, account, quantile
from tests.support import SAMPLES

T0 = 1_000.0  # small, so that float sums of milliseconds stay exact enough


def acks(count: int) -> list[Acked]:
    """Message n sent at T0 + n/10 s, ACKed 5 ms later."""
    return [Acked(control_id("P", n), T0 + n / 10, T0 + n / 10 + 0.005, "AA")
            for n in range(count)]


def test_rates_latencies_and_lags_come_from_the_right_clocks() -> None:
    sent = acks(4)
    # row n published 100 ms * (n + 1) after its ACK
    rows = [Settled(100 + n, a.control_id, "published", a.acked_at + 0.1 * (n + 1))
            for n, a in enumerate(sent)]
    # the broker appended each record 20 ms after the ACK
    records = [Record(100 + n, f"ev{n}", a.acked_at + 0.02) for n, a in enumerate(sent)]
    f = account(sent, rows, records)
    assert (f.messages, f.acked, f.published, f.failed) == (4, 4, 4, 0)
    assert (f.records, f.duplicates, f.missing) == (4, 0, 0)
    # first send T0, last ACK T0 + 0.305: 4 messages
    assert f.ack_msg_per_s == pytest.approx(4 / 0.305)
    # last row published at T0 + 0.3 + 0.005 + 0.4
    assert f.published_msg_per_s == pytest.approx(4 / 0.705)
    assert f.seconds == pytest.approx(0.705)
    assert f.ack_p50_ms == pytest.approx(5.0) and f.ack_p99_ms == pytest.approx(5.0)
    assert f.lag_p50_ms == pytest.approx(200.0)  # nearest rank: 2nd of 100..400
    assert f.lag_p99_ms == pytest.approx(400.0) and f.lag_max_ms == pytest.approx(400.0)
    assert f.broker_lag_p50_ms == pytest.approx(20.0)


def test_a_record_seen_twice_is_one_duplicate_and_its_first_copy_counts() -> None:
    sent = acks(3)
    rows = [Settled(10 + n, a.control_id, "published", a.acked_at + 0.05)
            for n, a in enumerate(sent)]
    records = [Record(10, "ev0", sent[0].acked_at + 0.01),
               Record(11, "ev1", sent[1].acked_at + 0.01),
               Record(11, "ev1", sent[1].acked_at + 0.9),  # a resend after a retry
               Record(12, "ev2", sent[2].acked_at + 0.01)]
    f = account(sent, rows, records)
    assert (f.records, f.duplicates, f.missing) == (4, 1, 0)
    assert f.broker_lag_p99_ms == pytest.approx(10.0)  # the late copy is not the lag


def test_warmup_rows_and_records_are_left_out_and_gaps_are_missing() -> None:
    sent = acks(3)
    rows = [Settled(1, "W00000000", "published", T0 - 5),  # the warm-up's
            Settled(10, sent[0].control_id, "published", sent[0].acked_at + 0.05),
            Settled(11, sent[1].control_id, "failed", None),
            Settled(12, sent[2].control_id, "pending", None)]
    records = [Record(1, "warm", T0 - 5), Record(10, "ev0", sent[0].acked_at + 0.01)]
    f = account(sent, rows, records)
    assert (f.published, f.failed, f.records, f.duplicates) == (1, 1, 1, 0)
    assert f.missing == 2  # accepted, but no record on the topic
    # only the run's published row counts: first send T0 to its mark
    assert f.published_msg_per_s == pytest.approx(1 / 0.055)


def test_a_refused_message_is_answered_but_not_expected_on_the_topic() -> None:
    sent = [*acks(1), Acked(control_id("P", 1), T0 + 0.1, T0 + 0.102, "AE")]
    rows = [Settled(10, sent[0].control_id, "published", sent[0].acked_at + 0.05)]
    f = account(sent, rows, [Record(10, "ev0", sent[0].acked_at + 0.01)])
    assert (f.messages, f.acked, f.missing) == (2, 1, 0)


def test_nothing_read_back_gives_no_broker_lag() -> None:
    sent = acks(2)
    rows = [Settled(10 + n, a.control_id, "published", a.acked_at + 0.05)
            for n, a in enumerate(sent)]
    f = account(sent, rows, [])
    assert f.broker_lag_p50_ms is None and f.missing == 2


def test_quantile_is_a_measured_value() -> None:
    assert quantile([], 0.99) == 0.0
    assert quantile([3.0], 0.5) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert quantile(values, 0.99) == 99.0
    assert quantile(values, 0.50) == 50.0
    assert quantile(list(reversed(values)), 0.99) == 99.0


def test_numbered_messages_are_distinct_and_spread_over_patients() -> None:
    sample = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
    first, again, next_patient = (numbered(sample, "PX", n) for n in (0, PATIENTS, 1))
    assert first.split(b"\r")[0].split(b"|")[9] == b"PX00000000"
    assert again.split(b"\r")[0].split(b"|")[9] == b"PX" + f"{PATIENTS:08d}".encode()

    def pid3(message: bytes) -> bytes:
        pid = next(s for s in message.split(b"\r") if s.startswith(b"PID"))
        return pid.split(b"|")[3]

    assert pid3(first) == pid3(again) != pid3(next_patient)
    assert pid3(first).startswith(b"PB000000^^^GOODHEALTH")
    # everything else is the sample's
    assert [s for s in first.split(b"\r") if not s.startswith((b"MSH", b"PID"))] == \
        [s for s in sample.split(b"\r") if not s.startswith((b"MSH", b"PID"))]
