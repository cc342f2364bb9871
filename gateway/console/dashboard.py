"""The dashboard's numbers: counters sampled every few seconds into an hour-long ring.

Prometheus counters only ever grow; the console wants rates ("messages accepted per
second", "ACK codes over time"). A sampler reads the gateway's own metric objects (no HTTP
scrape) every ``interval_s`` and keeps ``keep_s`` worth of samples in memory; rates are
differences between neighbouring samples. Charts are inline SVG drawn here, so the
console needs no chart library and no internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from markupsafe import Markup, escape
from prometheus_client.metrics import MetricWrapperBase

from gateway.console.kafka_lag import ConsumerLag
from gateway.metrics import GatewayMetrics
from gateway.spool import Spool

log = logging.getLogger("hl7gw.console")

ACK_CODES = ("AA", "CA", "AE", "CE", "AR", "CR")


@dataclass(frozen=True)
class Sample:
    """Counter totals and spool state at one moment."""

    t: float
    accepted: float  # AA + CA ACKs sent
    acks: dict[str, float]
    depth: int
    oldest_pending_age: float | None  # seconds; None: nothing pending
    rejected: float
    publish_errors: float
    mapping_failures: float
    consumer_lag: int | None = None  # the bridge group's undelivered events; None: unknown


def _total(metric: MetricWrapperBase, keep: Callable[[dict[str, str]], bool] = lambda _: True
           ) -> float:
    """Sum of a counter's ``_total`` samples over the label sets ``keep`` accepts."""
    total = 0.0
    for family in metric.collect():
        for s in family.samples:
            if s.name.endswith("_total") and keep(s.labels):
                total += s.value
    return total


def read_sample(metrics: GatewayMetrics, depth: int, oldest_pending_at: float | None,
                now: float, consumer_lag: int | None = None) -> Sample:
    """Read the counters now (cheap: in-process objects)."""
    def code_is(code: str) -> Callable[[dict[str, str]], bool]:
        return lambda labels: labels.get("code") == code

    acks = {code: _total(metrics.acks, code_is(code)) for code in ACK_CODES}
    age = max(0.0, now - oldest_pending_at) if oldest_pending_at is not None else None
    return Sample(now, acks["AA"] + acks["CA"], acks, depth, age, _total(metrics.rejected),
                  _total(metrics.publish_errors), _total(metrics.mapping_failures),
                  consumer_lag)


class Sampler:
    """Samples ``metrics`` and the spool into a ring buffer; ``run()`` until cancelled."""

    def __init__(self, metrics: GatewayMetrics, spool: Spool, *, interval_s: float = 5.0,
                 keep_s: float = 3600.0, clock: Callable[[], float] = time.time,
                 lag: ConsumerLag | None = None) -> None:
        self.metrics = metrics
        self.spool = spool
        self.lag = lag  # the bridge's consumer lag, when a bridge is configured
        self.interval_s = interval_s
        self.samples: deque[Sample] = deque(maxlen=max(2, int(keep_s / interval_s) + 1))
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def sample_once(self) -> Sample:
        """Take one sample now and keep it."""
        oldest = await self.spool.pending(limit=1)
        lag = await self.lag.read() if self.lag is not None else None
        sample = read_sample(self.metrics, self.spool.pending_rows,
                             oldest[0].received_at if oldest else None, self._clock(), lag)
        self.samples.append(sample)
        return sample

    async def run(self) -> None:
        """Sample every ``interval_s``; a failed sample is logged and skipped."""
        while True:
            try:
                await self.sample_once()
            except Exception as exc:  # noqa: BLE001 - a dashboard gap, not a crash
                log.warning("dashboard sample failed", extra={"error_class": type(exc).__name__})
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        """Start sampling in the running event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="console-sampler")

    async def stop(self) -> None:
        """Stop sampling; safe to call twice."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.lag is not None:
            await self.lag.close()

    def series(self) -> dict[str, object]:
        """Rates and levels per sample, oldest first (JSON for the API and the charts)."""
        points: list[dict[str, object]] = []
        items = list(self.samples)
        for prev, cur in itertools.pairwise(items):
            dt = max(cur.t - prev.t, 1e-9)

            def rate(a: float, b: float, dt: float = dt) -> float:
                return round(max(0.0, b - a) / dt, 3)

            points.append({
                "t": round(cur.t, 3),
                "accepted_per_s": rate(prev.accepted, cur.accepted),
                "acks_per_s": {c: rate(prev.acks[c], cur.acks[c]) for c in ACK_CODES},
                "spool_depth": cur.depth,
                "oldest_pending_age_s": (round(cur.oldest_pending_age, 1)
                                         if cur.oldest_pending_age is not None else None),
                "rejected_per_s": rate(prev.rejected, cur.rejected),
                "publish_errors_per_s": rate(prev.publish_errors, cur.publish_errors),
                "mapping_failures_per_s": rate(prev.mapping_failures, cur.mapping_failures),
                "consumer_lag": cur.consumer_lag,
            })
        return {"interval_s": self.interval_s, "points": points}


# -- charts -------------------------------------------------------------------------------

PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2")


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.2f}"


def svg_chart(title: str, series: Iterable[tuple[str, list[tuple[float, float]]]], *,
              unit: str = "", width: int = 520, height: int = 160) -> Markup:
    """A small line chart as inline SVG: one polyline per series, y from 0 to the max."""
    lines = [(name, pts) for name, pts in series]
    all_pts = [p for _, pts in lines for p in pts]
    left, right, top, bottom = 44, 8, 22, 22
    w, h = width - left - right, height - top - bottom
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="{left}" y="14" class="chart-title">{escape(title)}</text>',
           f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" class="axis"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" class="axis"/>']
    if not all_pts:
        out.append(f'<text x="{left + 8}" y="{top + h / 2}" class="chart-empty">'
                   "no samples yet (one every few seconds)</text></svg>")
        return Markup("".join(out))
    t0 = min(t for t, _ in all_pts)
    t1 = max(t for t, _ in all_pts)
    span = max(t1 - t0, 1.0)
    ymax = max(max(v for _, v in all_pts), 1e-9)
    out.append(f'<text x="{left - 4}" y="{top + 4}" class="tick" text-anchor="end">'
               f"{escape(_fmt(ymax))}</text>")
    out.append(f'<text x="{left - 4}" y="{top + h}" class="tick" text-anchor="end">0</text>')
    window = f"{span / 60:.0f} min" if span >= 120 else f"{span:.0f} s"
    out.append(f'<text x="{left + w}" y="{height - 6}" class="tick" text-anchor="end">'
               f"last {window}{escape(' · ' + unit if unit else '')}</text>")
    legend_x = left + 8
    for i, (name, pts) in enumerate(lines):
        colour = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{left + (t - t0) / span * w:.1f},{top + h - v / ymax * h:.1f}"
                          for t, v in pts)
        if coords:
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                       f'points="{coords}"/>')
        out.append(f'<text x="{legend_x}" y="{height - 6}" fill="{colour}" class="legend">'
                   f"{escape(name)}</text>")
        legend_x += 12 + 7 * len(name)
    out.append("</svg>")
    return Markup("".join(out))


def charts(series: dict[str, object]) -> dict[str, Markup]:
    """The dashboard's charts from ``Sampler.series()``."""
    points = series["points"]
    assert isinstance(points, list)

    def line(key: str) -> list[tuple[float, float]]:
        return [(p["t"], float(p[key] or 0)) for p in points]

    acks = [(code, [(p["t"], p["acks_per_s"][code]) for p in points]) for code in ACK_CODES
            if any(p["acks_per_s"][code] for p in points)] or [("AA", [])]
    return {
        "throughput": svg_chart("Messages accepted", [("accepted", line("accepted_per_s"))],
                                unit="per s"),
        "acks": svg_chart("ACK codes", acks, unit="per s"),
        "depth": svg_chart("Spool depth (pending rows)", [("pending", line("spool_depth"))]),
        "lag": svg_chart("Publish lag: age of the oldest pending row",
                         [("age", line("oldest_pending_age_s"))], unit="seconds"),
        "consumer_lag": svg_chart("Kafka consumer lag: events the bridge has not delivered",
                                  [("events", [(p["t"], float(p["consumer_lag"]))
                                               for p in points
                                               if p.get("consumer_lag") is not None])]),
        "errors": svg_chart("Errors", [("rejections", line("rejected_per_s")),
                                       ("publish errors", line("publish_errors_per_s")),
                                       ("mapping failures", line("mapping_failures_per_s"))],
                            unit="per s"),
    }
