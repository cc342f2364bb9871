"""The dashboard's SVG charts: distinct series colours with a legend, a time axis with
ticks and clock labels, round y ticks, and empty states that say what they mean."""

from __future__ import annotations

import re

from gateway.console.dashboard import (
    PALETTE,
    charts,
    history_charts,
    nice_max,
    svg_chart,
    time_ticks,
)
from gateway.console.interfaces_stats import MinuteTraffic

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def attr(svg: str, tag: str, name: str) -> list[str]:
    return re.findall(rf'<{tag}[^>]*\b{name}="([^"]+)"', svg)


def test_each_series_has_its_own_colour_in_the_line_and_the_legend() -> None:
    lines = [(f"s{i}", [(T0, float(i)), (T0 + 60, float(i + 1))]) for i in range(4)]
    svg = str(svg_chart("four", lines))
    strokes = attr(svg, "polyline", "stroke")
    swatches = attr(svg, "rect", "fill")
    assert len(set(strokes)) == 4 and strokes == swatches == list(PALETTE[:4])
    assert re.findall(r'class="legend">([^<]+)<', svg) == ["s0", "s1", "s2", "s3"]


def test_the_time_axis_has_clock_ticks() -> None:
    svg = str(svg_chart("hour", [("a", [(T0, 1.0), (T0 + 3600, 2.0)])]))
    labels = re.findall(r'class="tick x-tick"[^>]*>([^<]+)<', svg)
    assert labels == ["08:00", "08:10", "08:20", "08:30", "08:40", "08:50", "09:00"]
    short = str(svg_chart("s", [("a", [(T0, 1.0), (T0 + 20, 2.0)])]))
    assert re.findall(r'class="tick x-tick"[^>]*>([^<]+)<', short) == [
        "08:00:00", "08:00:05", "08:00:10", "08:00:15", "08:00:20"]


def test_y_ticks_are_round() -> None:
    svg = str(svg_chart("y", [("a", [(T0, 0.0), (T0 + 60, 7.3)])]))
    assert re.findall(r'class="tick y-tick"[^>]*>([^<]+)<', svg) == ["5", "10", "0"]
    assert [nice_max(v) for v in (0.07, 1, 3, 7.3, 180)] == [0.1, 1, 5, 10, 200]
    assert time_ticks(T0 + 1, T0 + 299) == [T0 + 60 * i for i in range(1, 5)]


def test_empty_states_say_what_they_mean() -> None:
    zeros = str(svg_chart("z", [("a", [(T0, 0.0), (T0 + 60, 0.0)])]))
    assert "no traffic in the last hour" in zeros
    assert "0.00" not in zeros and "<polyline" not in zeros
    nothing = charts({"interval_s": 5.0, "points": []})
    assert "no samples yet (one every 5 s)" in str(nothing["throughput"])
    quiet = history_charts(MinuteTraffic(T0, [0] * 60, [0] * 60, [0] * 60, [0] * 60))
    assert "no traffic in the last hour" in str(quiet["history"])
    assert "nothing pending in the last hour" in str(quiet["history_depth"])
    assert "x-tick" in str(quiet["history"])  # the axis is there even when it is empty


def test_history_charts_plot_the_spools_minutes() -> None:
    traffic = MinuteTraffic(T0, [3, 0, 1], [0, 3, 1], [0, 1, 0], [3, 0, 0])
    svg = str(history_charts(traffic)["history"])
    assert re.findall(r'class="legend">([^<]+)<', svg) == ["received", "published",
                                                            "rejected"]
    assert len(attr(svg, "polyline", "points")) == 3
    assert len(set(attr(svg, "polyline", "stroke"))) == 3


def test_ack_codes_keep_their_colour_whichever_appear() -> None:
    def point(t: float, **codes: float) -> dict[str, object]:
        acks = {c: codes.get(c, 0.0) for c in ("AA", "CA", "AE", "CE", "AR", "CR")}
        return {"t": t, "accepted_per_s": 1.0, "acks_per_s": acks, "spool_depth": 0,
                "oldest_pending_age_s": None, "rejected_per_s": 0.0,
                "publish_errors_per_s": 0.0, "mapping_failures_per_s": 0.0,
                "consumer_lag": None}
    only_ar = charts({"interval_s": 5.0, "points": [point(T0, AR=1.0), point(T0 + 5)]})
    both = charts({"interval_s": 5.0, "points": [point(T0, AA=1.0, AR=1.0)]})
    ar_alone = attr(str(only_ar["acks"]), "rect", "fill")
    assert len(ar_alone) == 1 and ar_alone[0] == attr(str(both["acks"]), "rect", "fill")[1]
