"""``hl7gw bench intake``: interleaved rounds over real sockets, real files and a real spool."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.bench import CEILINGS, BenchResult, _median_of, run_intake_bench
from gateway.cli import main

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "adt_a01.hl7"


def test_rounds_combine_into_medians_with_ratios_to_their_own_ceilings() -> None:
    rounds = [BenchResult("x", 100, 1.0, 1.0, 2.0, ratios={"echo": 0.2}, cpu_us_per_msg=90),
              BenchResult("x", 100, 0.5, 3.0, 9.0, ratios={"echo": 0.6}, cpu_us_per_msg=70),
              BenchResult("x", 100, 0.25, 2.0, 4.0, ratios={"echo": 0.3}, cpu_us_per_msg=80)]
    combined = _median_of(rounds)
    assert combined.rate == 200.0  # rates 100, 200, 400
    assert combined.ratios == {"echo": 0.3}  # not 200 / median ceiling: each round's own
    assert (combined.p50_ms, combined.p99_ms, combined.messages, combined.rounds) == \
        (2.0, 4.0, 300, 3)
    assert combined.cpu_us_per_msg == 80


async def test_every_configuration_is_measured_in_each_round(tmp_path: Path) -> None:
    results = await run_intake_bench(SAMPLE.read_bytes(), 60, 2, rounds=2, folder=tmp_path)
    assert [r.name for r in results] == ["bare asyncio echo", "fsync floor",
                                         "group-commit ceiling", "gateway listener, no spool",
                                         "spool + ACK", "intake: check + spool + ACK",
                                         "intake, encrypted at rest", "intake, journal off"]
    for key, r in zip(CEILINGS, results, strict=False):
        assert r.ratios[key] == 1.0  # each ceiling, against itself
    for r in results:
        assert r.rounds == 2 and r.messages == 60 and r.rate > 0 and 0 < r.p50_ms <= r.p99_ms
        assert set(r.ratios) == set(CEILINGS)
        assert r.cpu_us_per_msg > 0
    cpu = {r.name: r.cpu_us_per_msg for r in results}
    # Checking, storing and answering costs the server more than echoing does.
    assert cpu["intake: check + spool + ACK"] > cpu["bare asyncio echo"]
    assert os.listdir(tmp_path) == []  # each round's files were removed


def test_the_cli_prints_the_same_figures_as_json() -> None:
    out = CliRunner().invoke(main, ["bench", "intake", "-n", "40", "--connections", "2",
                                    "--rounds", "2", "--sample", str(SAMPLE), "--json"])
    assert out.exit_code == 0, out.output
    figures = json.loads(out.output)
    run = figures["connections"]["2"]
    assert run["ceiling"] == "group_commit"
    ceiling = run["configurations"]["group-commit ceiling"]
    assert ceiling["ratio_to_ceiling"] == 1.0 and ceiling["rounds"] == 2
    intake = run["configurations"]["intake: check + spool + ACK"]
    assert 0 < intake["ratio_to_ceiling"] and intake["msg_per_s"] > 0
    assert 0 < intake["ratios"]["echo"] and 0 < intake["ratios"]["fsync_floor"]
    echo = run["configurations"]["bare asyncio echo"]
    assert intake["cpu_us_per_msg"] > echo["cpu_us_per_msg"] > 0
