"""The bridge benchmark end to end with a small count (figures only, no timing asserts)."""

from __future__ import annotations

import pytest

from connectors.bench import run_bridge_bench
from connectors.settings import KafkaSettings

pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
async def test_bridge_bench_delivers_everything_in_order(kafka_bootstrap: str) -> None:
    figures = await run_bridge_bench(KafkaSettings(bootstrap_servers=kafka_bootstrap), 120)
    assert figures["events"] == 120 and figures["delivered"] == 120
    assert figures["keys"] == 10
    assert figures["in_order"] is True
    assert figures["events_per_s"] > 0 and figures["ceiling_posts_per_s"] > 0
    assert set(figures) >= {"seconds", "events_per_s", "in_order", "ceiling_posts_per_s",
                            "ratio_to_ceiling"}
