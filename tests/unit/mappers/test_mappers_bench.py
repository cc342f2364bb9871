"""Tests for mappers.bench: the figures ``hl7gw bench`` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from mappers import bench, convert

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "adt_a01.hl7"


def test_the_benchmarked_message_is_the_sample() -> None:
    assert bench.ADT_A01 == SAMPLE.read_bytes().decode()
    assert convert(bench.ADT_A01).message_type == "ADT^A01"


def test_run_reports_rates_and_times() -> None:
    figures = bench.run(10)
    for name in ("parse", "convert", "convert_validate"):
        rate, micros = figures[f"{name}_per_s"], figures[f"{name}_us"]
        assert rate > 0 and micros > 0
        assert rate * micros == pytest.approx(1e6, rel=0.01)
    assert figures["parse_us"] < figures["convert_us"] < figures["convert_validate_us"]
    assert figures["messages"] == 10


def test_run_needs_enough_messages() -> None:
    with pytest.raises(ValueError, match="at least"):
        bench.run(2)
