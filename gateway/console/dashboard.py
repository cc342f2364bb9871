"""The dashboard's numbers: counters sampled every few seconds into an hour-long ring.

Prometheus counters only ever grow; the console wants rates ("messages accepted per
second", "ACK codes over time"). A sampler reads the gateway's own metric objects (no HTTP
scrape) every ``interval_s`` and keeps ``keep_s`` worth of samples in memory; rates are
differences between neighbouring samples. Those start empty after a restart; the hour's
per-minute history (received, published, rejected, pending) is read from the spool
instead (gateway/console/interfaces_stats.py), so it survives one. Charts are inline SVG
drawn here, so the console needs no chart library and no internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup, escape
from prometheus_client.metrics import MetricWrapperBase

from gateway.console.interfaces_stats import MinuteTraffic, per_minute, read_stats
from gateway.console.kafka_lag import ConsumerLag
from gateway.metrics import GatewayMetrics
from gateway.spool import Spool

log = logging.getLogger("hl7gw.console")

ACK_CODES = ("AA", "CA", "AE", "CE", "AR", "CR")
HISTORY_TTL_S = 30.0


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
        self._history: MinuteTraffic | None = None
        self._history_at = 0.0
        self._history_lock = asyncio.Lock()

    async def history(self) -> MinuteTraffic:
        """The last hour per minute from the spool (it survives a restart), read at most
        every ``HISTORY_TTL_S``: on a busy spool the published counts take ~0.5 s."""
        async with self._history_lock:
            now = self._clock()
            if self._history is None or now - self._history_at > HISTORY_TTL_S:
                await self.spool.flush()  # journaled rows into SQLite first
                self._history = await read_stats(self.spool.path, per_minute, now)
                self._history_at = now
            return self._history

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
# Series colours are attributes on each line and legend swatch; console.css sets no fill or
# stroke on them, so a stylesheet rule cannot turn the legend grey again.

PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2")
# one colour per ACK code, the same on every chart: accepts cool, refusals warm
ACK_COLOURS = {"AA": "#2563eb", "CA": "#0891b2", "AE": "#d97706", "CE": "#ca8a04",
               "AR": "#dc2626", "CR": "#be185d"}
TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600)
MAX_TIME_TICKS = 6
Points = list[tuple[float, float]]


def _fmt(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2g}"


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value`` (> 0)."""
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10.0 ** exponent
        if top >= value * (1 - 1e-9):
            return top
    return 10.0 ** (exponent + 1)


def time_ticks(t0: float, t1: float) -> list[float]:
    """Round times (every 1 s ... 6 h, at most ``MAX_TIME_TICKS``) between t0 and t1."""
    span = max(t1 - t0, 1.0)
    step = next((s for s in TICK_STEPS_S if span / s <= MAX_TIME_TICKS), TICK_STEPS_S[-1])
    first = math.ceil(t0 / step) * step
    return [float(t) for t in range(int(first), int(t1) + 1, step)]


def _clock(t: float, seconds: bool) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S" if seconds else "%H:%M")


def svg_chart(title: str, series: Iterable[tuple[str, Points]], *, unit: str = "",
              window: tuple[float, float] | None = None,
              empty: str = "no traffic in the last hour",
              no_data: str = "no samples yet (one every few seconds)",
              colours: Sequence[str] = PALETTE, width: int = 520, height: int = 190
              ) -> Markup:
    """A line chart as inline SVG: a time axis with UTC clock ticks, y from 0 to a round
    maximum with three ticks, one coloured line per series and a legend with the colours.

    ``window``: the time range to draw (else the data's). With no points at all the chart
    says ``no_data``; with only zeros it says ``empty`` instead of drawing a flat line.
    ``colours``: one per series, in order (distinct: the palette's by default).
    """
    lines = [(name, pts) for name, pts in series]
    left, right, top, bottom = 44, 10, 24, 44
    w, h = width - left - right, height - top - bottom
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="{left}" y="15" class="chart-title">{escape(title)}'
           f'{escape(" (" + unit + ")" if unit else "")}</text>',
           f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" class="axis"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" class="axis"/>']
    all_pts = [p for _, pts in lines for p in pts]
    if not all_pts and window is None:
        out.append(f'<text x="{left + w / 2}" y="{top + h / 2}" class="chart-empty" '
                   f'text-anchor="middle">{escape(no_data)}</text></svg>')
        return Markup("".join(out))
    t0, t1 = window or (min(t for t, _ in all_pts), max(t for t, _ in all_pts))
    span = max(t1 - t0, 1.0)
    ticks = time_ticks(t0, t1)
    seconds = len(ticks) > 1 and ticks[1] - ticks[0] < 60
    for t in ticks:
        x = left + (t - t0) / span * w
        # labels at the ends are anchored inwards, so the chart's edge does not cut them
        anchor = "end" if x > left + w - 24 else "start" if x < left + 24 else "middle"
        out.append(f'<line x1="{x:.1f}" y1="{top + h}" x2="{x:.1f}" y2="{top + h + 4}" '
                   f'class="axis tick-mark"/><text x="{x:.1f}" y="{top + h + 15}" '
                   f'class="tick x-tick" text-anchor="{anchor}">{_clock(t, seconds)}</text>')
    peak = max((v for _, v in all_pts), default=0.0)
    if peak <= 0:
        out.append(f'<text x="{left + w / 2}" y="{top + h / 2}" class="chart-empty" '
                   f'text-anchor="middle">{escape(empty)}</text>')
        ymax = 1.0
    else:
        ymax = nice_max(peak)
        for frac in (0.5, 1.0):
            y = top + h - frac * h
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" '
                       f'class="grid"/><text x="{left - 4}" y="{y + 4:.1f}" '
                       f'class="tick y-tick" text-anchor="end">{_fmt(ymax * frac)}</text>')
    out.append(f'<text x="{left - 4}" y="{top + h + 4}" class="tick y-tick" '
               'text-anchor="end">0</text>')
    legend_x = left
    for i, (name, pts) in enumerate(lines):
        colour = colours[i % len(colours)]
        coords = " ".join(f"{left + (t - t0) / span * w:.1f},{top + h - v / ymax * h:.1f}"
                          for t, v in pts)
        if coords and peak > 0:  # earlier series drawn wider: a line on top leaves a rim
            width_px = 1.6 + 0.9 * (len(lines) - 1 - i)
            out.append(f'<polyline fill="none" stroke="{colour}" '
                       f'stroke-width="{width_px:.1f}" stroke-linejoin="round" '
                       f'class="series" points="{coords}"/>')
        out.append(f'<rect x="{legend_x}" y="{height - 15}" width="10" height="10" '
                   f'fill="{colour}" class="swatch"/><text x="{legend_x + 14}" '
                   f'y="{height - 6}" class="legend">{escape(name)}</text>')
        legend_x += 26 + 6 * len(name)
    out.append("</svg>")
    return Markup("".join(out))


def charts(series: dict[str, object], traffic: MinuteTraffic | None = None
           ) -> dict[str, Markup]:
    """The dashboard's charts from ``Sampler.series()`` and the spool's minute counts."""
    points = series["points"]
    assert isinstance(points, list)
    waiting = f"no samples yet (one every {series.get('interval_s', 5):g} s)"

    def line(key: str) -> Points:
        return [(p["t"], float(p[key] or 0)) for p in points]

    def chart(title: str, lines: list[tuple[str, Points]], unit: str = "",
              empty: str = "no traffic in the last hour") -> Markup:
        return svg_chart(title, lines, unit=unit, empty=empty, no_data=waiting)

    codes = [c for c in ACK_CODES if any(p["acks_per_s"][c] for p in points)] or ["AA"]
    acks = [(code, [(p["t"], p["acks_per_s"][code]) for p in points]) for code in codes]
    out = {
        "throughput": chart("Messages accepted", [("accepted", line("accepted_per_s"))],
                            unit="per s"),
        "acks": svg_chart("ACK codes", acks, unit="per s", no_data=waiting,
                          colours=[ACK_COLOURS[c] for c in codes]),
        "depth": chart("Spool depth (pending rows)", [("pending", line("spool_depth"))],
                       empty="nothing pending"),
        "lag": chart("Publish lag: age of the oldest pending row",
                     [("age", line("oldest_pending_age_s"))], unit="s",
                     empty="nothing waiting to be published"),
        "consumer_lag": chart("Kafka consumer lag: events the bridge has not delivered",
                              [("events", [(p["t"], float(p["consumer_lag"]))
                                           for p in points
                                           if p.get("consumer_lag") is not None])],
                              empty="the bridge is keeping up"),
        "errors": chart("Errors", [("rejections", line("rejected_per_s")),
                                   ("publish errors", line("publish_errors_per_s")),
                                   ("mapping failures", line("mapping_failures_per_s"))],
                        unit="per s", empty="no errors"),
    }
    if traffic is not None:
        out.update(history_charts(traffic))
    return out


def history_charts(traffic: MinuteTraffic) -> dict[str, Markup]:
    """Per-minute charts of the last hour from the spool (they survive a restart)."""
    minutes = [traffic.start + 60 * (i + 1) for i in range(len(traffic.received))]
    window = (traffic.start, minutes[-1] if minutes else traffic.start + 60)

    def pts(values: list[int]) -> Points:
        return [(t, float(v)) for t, v in zip(minutes, values, strict=True)]

    return {
        "history": svg_chart("Messages per minute, last hour (from the spool)",
                             [("received", pts(traffic.received)),
                              ("published", pts(traffic.published)),
                              ("rejected", pts(traffic.rejected))], window=window),
        "history_depth": svg_chart("Pending rows, last hour (estimated from the spool)",
                                   [("pending", pts(traffic.depth))], window=window,
                                   empty="nothing pending in the last hour"),
    }
