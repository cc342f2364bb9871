"""Tests for mappers.bench: the figures ``hl7gw bench map`` prints."""

from __future__ import annotations

import pytest

from mappers import bench, convert
from tests.support import MESSAGES, REPO, SAMPLES


def test_the_benchmarked_messages_are_the_samples() -> None:
    # read from the one samples folder: no copy of them in the source tree
    assert not (REPO / "mappers" / "data").exists()
    assert bench.ADT_A01 == (SAMPLES / "adt_a01.hl7").read_bytes().decode()
    # one sample per message type is timed (not each of the ~100 events' samples)
    samples = {p.read_bytes().decode() for p in [*SAMPLES.glob("*.hl7"), *MESSAGES.glob("*.hl7")]}
    for label, text in bench.SAMPLES.items():
        assert text in samples, label


def test_every_supported_message_code_is_benchmarked() -> None:
    types = {convert(text).message_type for text in bench.SAMPLES.values()}
    assert {t.split("^")[0] for t in types} == {"ADT", "ORU", "ORM", "OML", "SIU", "MDM",
                                                 "VXU", "RDE"}
    for label, text in bench.SAMPLES.items():
        assert label.startswith(convert(text).message_type)
    oru = convert(bench.ORU_R01_10_OBX).bundle
    assert sum(e["resource"]["resourceType"] == "Observation" for e in oru["entry"]) == 10


def test_run_reports_flat_rates_per_type() -> None:
    figures = bench.run(10)
    assert all(isinstance(v, float) and v > 0 for v in figures.values())
    for label in bench.SAMPLES:
        assert f"{label} convert msg/s" in figures
    assert "ADT^A01 convert+validate msg/s" in figures
    assert "ORU^R01 10 OBX convert+validate msg/s" in figures
    assert f"{bench.PROFILED} convert msg/s" in figures
    assert f"{bench.REPORT} convert msg/s" in figures
    assert figures["ADT^A01 parse msg/s"] > figures["ADT^A01 check msg/s"] > \
        figures["ADT^A01 convert msg/s"] > figures["ADT^A01 convert+validate msg/s"]


def test_the_profiled_sample_uses_every_kind_of_profile_change() -> None:
    text, profile = bench._profiled()
    result = convert(text, profile=profile)
    observations = [e["resource"] for e in result.bundle["entry"]
                    if e["resource"]["resourceType"] == "Observation"]
    assert len(observations) == 10
    assert all(o["extension"][0]["valueString"] == "Cobas 8000" for o in observations)
    assert any(o["code"]["coding"][0]["system"] == "https://riverside.example/tests"
               for o in observations)
    assert convert(text).bundle != result.bundle


def test_run_needs_enough_messages() -> None:
    with pytest.raises(ValueError, match="at least"):
        bench.run(2)


def test_the_instruction_count_loop_runs_as_a_module() -> None:
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "mappers.bench", "ORU^R01 10 OBX", "2"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "mappers.bench", "ADT^Z99", "1"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "ADT^Z99" in bad.stderr


def test_the_report_row_is_one_long_report_of_lines_sharing_obx3() -> None:
    text = bench.text_report(bench.REPORT_LINES)
    assert bench.REPORT.startswith(convert(text).message_type)
    obx = [seg for seg in text.split("\r") if seg.startswith("OBX|")]
    assert len(obx) == bench.REPORT_LINES == 5000
    assert len({seg.split("|")[3] for seg in obx}) == 1
