"""Console helpers: HL7 field names, dashboard rates and charts."""

from __future__ import annotations

from pathlib import Path

from gateway.console.dashboard import Sampler, charts, svg_chart
from gateway.console.hl7view import reference_version, segments
from gateway.metrics import GatewayMetrics
from gateway.spool import Spool
from tests.support import SAMPLES


def test_fields_are_named_from_the_messages_version() -> None:
    text = (SAMPLES / "adt_a01.hl7").read_bytes().decode().split("\r\x1c")[0]
    segs = segments(text)
    assert segs[0].id == "MSH"
    msh = {f.key: f for f in segs[0].fields}
    assert msh["MSH-1"].value == "|" and msh["MSH-2"].value == "^~\\&"
    assert msh["MSH-9"].name == "Message Type"
    pid = next(s for s in segs if s.id == "PID")
    names = {f.key: f.name for f in pid.fields}
    assert names["PID-5"] == "Patient Name"
    assert names["PID-3"] == "Patient Identifier List"


def test_z_segments_and_unknown_versions_fall_back() -> None:
    segs = segments("MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.7.1\rZPD|one||three")
    assert [(f.key, f.name, f.value) for f in segs[1].fields] == [
        ("ZPD-1", "", "one"), ("ZPD-3", "", "three")]
    assert reference_version("2.7.1") == "2.7"
    assert reference_version("2.5.1") == "2.5.1"
    assert reference_version("nonsense") == "2.5"


async def test_sampler_turns_counters_into_rates(tmp_path: Path) -> None:
    metrics = GatewayMetrics()
    spool = Spool(tmp_path / "spool.db")
    await spool.start()
    clock = [100.0]
    try:
        sampler = Sampler(metrics, spool, interval_s=5, keep_s=60, clock=lambda: clock[0])
        await sampler.sample_once()
        metrics.acks.labels("l", "AA", "other").inc(10)
        metrics.acks.labels("l", "CA", "other").inc(5)
        metrics.acks.labels("l", "AE", "other").inc(2)
        metrics.rejected.labels("l", "207", "other").inc(2)
        clock[0] += 5
        await sampler.sample_once()
        points = sampler.series()["points"]
        assert isinstance(points, list) and len(points) == 1
        p = points[0]
        assert p["accepted_per_s"] == 3.0
        assert p["acks_per_s"]["AE"] == 0.4
        assert p["rejected_per_s"] == 0.4
        assert p["oldest_pending_age_s"] is None
        for _ in range(20):  # the ring keeps keep_s / interval_s + 1 samples
            clock[0] += 5
            await sampler.sample_once()
        assert len(sampler.samples) == 13
        svg = charts(sampler.series())
        assert str(svg["throughput"]).startswith("<svg")
    finally:
        await spool.stop()


def test_charts_escape_their_labels() -> None:
    svg = str(svg_chart("<b>", [("<script>", [(0.0, 1.0), (5.0, 2.0)])]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<polyline" in svg
