"""``hl7gw bench search`` on a small spool: every query kind finds what it was built to
find, text searches say how far they read, and the bench leaves no files behind."""

from __future__ import annotations

from pathlib import Path

from gateway.search_bench import lines, run


def test_a_small_search_bench_finds_every_kind_and_cleans_up(tmp_path: Path) -> None:
    figures = run(1000, tmp_path, intake_rows=64)
    queries = figures["queries"]
    for kind in ("identifier", "control", "order", "identifier + sender + day"):
        assert queries[kind]["rows_min"] >= 1, kind
    assert queries["control"]["rows_max"] == 1
    assert queries["name"]["rows_min"] >= 1
    assert queries["text, no hit (no window)"]["rows_max"] == 0
    assert queries["text, no hit (no window)"]["scanned"] == 1000
    assert figures["index"]["rows"] == 1000 and figures["index"]["terms_per_message"] > 5
    assert figures["intake"]["messages"] == 64
    assert not list(tmp_path.glob("search-bench.db*"))
    assert any("scanned 1,000 of 1,000" in line for line in lines(figures))
