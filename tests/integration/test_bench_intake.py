"""``hl7gw bench intake``: interleaved rounds over real sockets, real files and a real spool."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gateway.bench import (
    CEILINGS,
    BenchResult,
    _median_of,
    intake_figures,
    intake_lines,
    run_intake_bench,
)
from gateway.cli import main
from gateway.fsinfo import FileSystem

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "adt_a01.hl7"


def test_rounds_combine_into_medians_with_ratios_to_their_own_ceilings() -> None:
    rounds = [BenchResult("x", 100, 1.0, 1.0, 2.0, ratios={"echo": 0.2}, cpu_us_per_msg=90,
                          senders_cpu_us_per_msg=30),
              BenchResult("x", 100, 0.5, 3.0, 9.0, ratios={"echo": 0.6}, cpu_us_per_msg=70,
                          senders_cpu_us_per_msg=50),
              BenchResult("x", 100, 0.25, 2.0, 4.0, ratios={"echo": 0.3}, cpu_us_per_msg=80,
                          senders_cpu_us_per_msg=40)]
    combined = _median_of(rounds)
    assert combined.rate == 200.0  # rates 100, 200, 400
    assert combined.ratios == {"echo": 0.3}  # not 200 / median ceiling: each round's own
    assert (combined.p50_ms, combined.p99_ms, combined.messages, combined.rounds) == \
        (2.0, 4.0, 300, 3)
    assert combined.cpu_us_per_msg == 80
    assert combined.senders_cpu_us_per_msg == 40


def test_one_sender_is_bounded_on_one_core_as_it_takes_turns_with_the_server() -> None:
    def result(name: str, rate: float) -> BenchResult:
        return BenchResult(name, 100, 100 / rate, 1.0, 1.0, cpu_us_per_msg=250,
                           senders_cpu_us_per_msg=250, ratios=dict.fromkeys(CEILINGS, 1.0))

    runs = {conns: [result(name, 2_000) for name in CEILINGS.values()] for conns in (1, 8)}
    where: dict[str, Any] = {"count": 100, "rounds": 1, "folder": Path("/x"), "cores": 2,
             "fs": FileSystem("/", "ext4", "/dev/vda")}
    figures = intake_figures(runs, **where)
    one = figures["connections"]["1"]["configurations"]["fsync floor"]
    eight = figures["connections"]["8"]["configurations"]["group-commit ceiling"]
    assert one["cpu_bound_msg_per_s"] == 2_000  # 1e6 / (250 + 250): one at a time
    assert eight["cpu_bound_msg_per_s"] == 4_000  # both cores, loop's own bound 1e6 / 250
    assert one["cpu_bound_ratio_to_ceiling"] == 1.0 and eight["cpu_bound_ratio_to_ceiling"] == 2.0
    assert any("cpu-bound    2,000 msg/s" in line for line in intake_lines(runs, **where))


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
        assert r.cpu_us_per_msg > 0 and r.senders_cpu_us_per_msg > 0
        assert 0 < r.cpu_bound(2) <= 1e6 / r.cpu_us_per_msg
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
    assert intake["senders_cpu_us_per_msg"] > 0 and figures["cores"] >= 1
    both = intake["cpu_us_per_msg"] + intake["senders_cpu_us_per_msg"]
    assert intake["cpu_bound_msg_per_s"] == pytest.approx(
        min(min(figures["cores"], 2) * 1e6 / both, 1e6 / intake["cpu_us_per_msg"]), rel=0.01)
    assert intake["cpu_bound_ratio_to_ceiling"] == pytest.approx(
        intake["cpu_bound_msg_per_s"] / ceiling["msg_per_s"], abs=0.01)
