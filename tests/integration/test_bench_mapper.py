"""The scale-out mapping bench end to end with a small count (figures only, no timing asserts)."""

from __future__ import annotations

import pytest

from gateway.mllp.client import split_messages
from gateway.scaleout_bench import run_mapper_bench
from tests.support import SAMPLES

pytestmark = pytest.mark.integration


@pytest.mark.timeout(400)
async def test_mapper_bench_maps_everything_with_one_and_two_instances(
        kafka_bootstrap: str) -> None:
    message = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
    figures = await run_mapper_bench(kafka_bootstrap, message, 120, [1, 2])
    assert figures["messages"] == 120 and figures["ceiling_one_core_msg_per_s"] > 0
    for k in ("1", "2"):
        run = figures["instances"][k]
        assert run["published"] == 120  # every message mapped once (distinct event ids)
        assert run["msg_per_s"] > 0 and run["ratio_to_ceiling"] > 0
