"""The accounting of ``hl7gw bench pipeline`` (gateway/pipeline_bench.py): the senders',
the spool's and the topic's views of one run, combined into its figures and its text.

Pure functions over named records, so the arithmetic (rates, quantiles, lags, duplicates)
is tested on known timestamps, apart from any socket or broker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Acked:
    """One message as its sender saw it (wall-clock seconds)."""

    control_id: str
    sent_at: float
    acked_at: float
    code: str  # MSA-1: AA (or CA); anything else was not accepted


@dataclass(frozen=True)
class Settled:
    """One of the run's spool rows after the run."""

    row_id: int
    control_id: str
    status: str  # published, failed, or still pending
    published_at: float | None


@dataclass(frozen=True)
class Record:
    """One record read back from the topic."""

    row_id: int  # its ce_hl7spoolrow header
    event_id: str  # its ce_id header
    timestamp: float  # seconds; the broker's append time on a LogAppendTime topic
    log_append: bool = True  # False: the producer's create time (the topic was not ours)


@dataclass(frozen=True)
class PipelineFigures:
    """What one run measured; see the module docstring for where each clock comes from."""

    messages: int
    acked: int  # answered AA/CA
    published: int  # rows marked published in the spool
    failed: int  # rows marked failed (unmappable or refused by Kafka for good)
    records: int  # records of the run's rows on the topic
    duplicates: int  # records whose event id was seen before
    missing: int  # accepted messages with no record on the topic
    ack_msg_per_s: float
    published_msg_per_s: float
    ack_p50_ms: float
    ack_p99_ms: float
    lag_p50_ms: float  # ACK -> row marked published (after the broker's ack)
    lag_p99_ms: float
    lag_max_ms: float
    broker_lag_p50_ms: float | None  # ACK -> broker append time; None without such stamps
    broker_lag_p99_ms: float | None
    seconds: float  # first send to the last row published

    def as_dict(self) -> dict[str, Any]:
        """The figures, rounded for people and scripts."""
        return {k: (round(v, 2) if isinstance(v, float) else v)
                for k, v in asdict(self).items()}


def account(acks: Sequence[Acked], rows: Iterable[Settled], records: Iterable[Record],
            ) -> PipelineFigures:
    """Combine the senders' view, the spool's and the topic's into the run's figures.

    Rows and records are matched to acks by control id (rows) and spool row (records);
    rows or records that belong to no ACKed message of the run (the warm-up's) are ignored.
    """
    by_control = {a.control_id: a for a in acks}
    accepted = {a.control_id for a in acks if a.code in ("AA", "CA")}
    settled = {r.control_id: r for r in rows if r.control_id in by_control}
    row_control = {r.row_id: r.control_id for r in settled.values()}
    published = [r for r in settled.values() if r.status == "published"
                 and r.published_at is not None]
    first_record: dict[str, Record] = {}
    records_seen = duplicates = 0
    for record in records:
        if record.row_id not in row_control:
            continue
        records_seen += 1
        if record.event_id in first_record:
            duplicates += 1
        else:
            first_record[record.event_id] = record
    with_record = {row_control[r.row_id] for r in first_record.values()}
    began = min((a.sent_at for a in acks), default=0.0)
    last_ack = max((a.acked_at for a in acks), default=began)
    last_published = max((r.published_at or 0.0 for r in published), default=began)
    lags = [((r.published_at or 0.0) - by_control[r.control_id].acked_at) * 1000
            for r in published]
    broker = [(rec.timestamp - by_control[row_control[rec.row_id]].acked_at) * 1000
              for rec in first_record.values()]
    ack_ms = [(a.acked_at - a.sent_at) * 1000 for a in acks]
    return PipelineFigures(
        messages=len(acks), acked=len(accepted), published=len(published),
        failed=sum(r.status == "failed" for r in settled.values()),
        records=records_seen, duplicates=duplicates, missing=len(accepted - with_record),
        ack_msg_per_s=_rate(len(acks), last_ack - began),
        published_msg_per_s=_rate(len(published), last_published - began),
        ack_p50_ms=quantile(ack_ms, 0.50), ack_p99_ms=quantile(ack_ms, 0.99),
        lag_p50_ms=quantile(lags, 0.50), lag_p99_ms=quantile(lags, 0.99),
        lag_max_ms=max(lags, default=0.0),
        broker_lag_p50_ms=quantile(broker, 0.50) if broker else None,
        broker_lag_p99_ms=quantile(broker, 0.99) if broker else None,
        seconds=max(last_published - began, 0.0))


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 for no values): a value that was measured."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def text_lines(figures: dict[str, Any], sample_name: str) -> list[str]:
    """The figures for people."""
    f = figures
    broker = (f"  broker append: lag p50 {f['broker_lag_p50_ms']:8.1f} ms  p99 "
              f"{f['broker_lag_p99_ms']:8.1f} ms   (ACK -> the record's broker timestamp)"
              if f["broker_lag_p50_ms"] is not None else "  broker append: no records read")
    return [
        f"pipeline, {f['sample_messages']:,} x {sample_name} over {f['connections']} MLLP "
        f"sender(s) waiting for each ACK; {f['mapping_workers']} mapping worker(s), "
        f"{f['cores']} cores, topic with {f['partitions']} partitions:",
        f"  ACKed     {f['ack_msg_per_s']:9,.0f} msg/s   ACK latency p50 {f['ack_p50_ms']:8.1f} ms"
        f"  p99 {f['ack_p99_ms']:8.1f} ms",
        f"  published {f['published_msg_per_s']:9,.0f} msg/s   publish lag p50 "
        f"{f['lag_p50_ms']:8.1f} ms  p99 {f['lag_p99_ms']:8.1f} ms  max {f['lag_max_ms']:.1f} ms"
        "   (ACK -> row marked published after the broker's ack)",
        broker,
        cpu_line(f),
        f"  accepted {f['acked']:,}, published {f['published']:,}, failed {f['failed']:,};"
        f" records on the topic {f['records']:,}, duplicates {f['duplicates']:,},"
        f" missing {f['missing']:,}",
    ]


def cpu_line(f: dict[str, Any]) -> str:
    """CPU per message by process, their sum and the rate it allows on this machine."""
    parts = [(name, f.get(key)) for name, key in (
        ("gateway process", "gateway_cpu_us_per_msg"),
        ("mapping workers", "mapping_cpu_us_per_msg"),
        ("senders", "senders_cpu_us_per_msg"), ("Kafka broker", "broker_cpu_us_per_msg"))]
    known = ", ".join(f"{name} {value:.0f}" for name, value in parts if value is not None)
    line = f"  CPU per message (µs): {known}"
    if f.get("total_cpu_us_per_msg") is not None and f.get("cpu_bound_msg_per_s"):
        line += (f"; {f['total_cpu_us_per_msg']:.0f} in all: at most "
                 f"{f['cpu_bound_msg_per_s']:,} msg/s on {f['cores']} cores")
    return line
