"""Alert rules: the state machine (ok -> pending -> firing -> resolved) on a fake clock,
each kind measured from fake sources, and the config section's checks."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter, ValidationError

from gateway.alerts.engine import AlertEngine
from gateway.alerts.rules import RuleState, growth
from gateway.alerts.settings import AlertSettings, Rule, parse_duration
from gateway.config import load_settings
from gateway.errors import ConfigError

RULE: TypeAdapter[Rule] = TypeAdapter(Rule)


def rule(**fields: Any) -> Rule:
    return RULE.validate_python(fields)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSources:
    """Numbers a test sets; None where the real source would not answer."""

    def __init__(self) -> None:
        self.seen: dict[str | None, float | None] = {}
        self.depth_rows = 0
        self.oldest: float | None = None
        self.counts: tuple[int, int] = (0, 0)
        self.count_calls: list[tuple[float, str | None]] = []
        self.dlq: int | None = 0

    async def last_seen(self, sender: str | None) -> float | None:
        return self.seen.get(sender)

    async def depth(self) -> int:
        return self.depth_rows

    async def oldest_pending(self) -> float | None:
        return self.oldest

    async def counts_since(self, since: float, sender: str | None) -> tuple[int, int]:
        self.count_calls.append((since, sender))
        return self.counts

    async def dlq_total(self) -> int | None:
        return self.dlq


def engine(*rules: dict[str, Any], clock: Clock, sources: FakeSources,
           registry: CollectorRegistry | None = None) -> AlertEngine:
    settings = AlertSettings.model_validate({"rules": list(rules)})
    return AlertEngine(settings, sources, source="urn:test", clock=clock,
                       registry=registry or CollectorRegistry())


# -- the state machine --------------------------------------------------------------------

def now(state: RuleState) -> str:
    """The state read afresh (it changes under each ``observe``)."""
    return state.state


def test_breach_must_hold_for_its_duration_before_firing() -> None:
    state = RuleState(rule(name="d", kind="spool_depth", above=10, **{"for": "30s"}))
    assert state.observe(11, True, 100.0) is None
    assert now(state) == "pending" and state.since == 100.0
    assert state.observe(12, True, 129.0) is None and now(state) == "pending"
    fired = state.observe(13, True, 130.0)
    assert fired is not None and fired.state == "firing" and fired.value == 13
    assert now(state) == "firing" and state.since == 130.0
    assert state.observe(14, True, 200.0) is None  # sent once, not on every evaluation


def test_a_breach_that_stops_while_pending_is_never_sent() -> None:
    state = RuleState(rule(name="d", kind="spool_depth", above=10, **{"for": "1m"}))
    state.observe(11, True, 0.0)
    assert state.observe(5, False, 30.0) is None
    assert now(state) == "ok"
    # a new breach starts its own clock
    assert state.observe(11, True, 40.0) is None
    assert state.observe(11, True, 99.0) is None and now(state) == "pending"
    assert state.observe(11, True, 100.0) is not None


def test_firing_then_clear_is_resolved_and_can_fire_again() -> None:
    state = RuleState(rule(name="d", kind="spool_depth", above=0))
    assert state.observe(1, True, 0.0) is not None  # for: 0 fires at once
    resolved = state.observe(0, False, 5.0)
    assert resolved is not None and resolved.state == "resolved" and now(state) == "resolved"
    assert state.observe(0, False, 10.0) is None and now(state) == "resolved"
    again = state.observe(3, True, 20.0)
    assert again is not None and again.state == "firing"


def test_an_unknown_value_neither_fires_nor_resolves() -> None:
    state = RuleState(rule(name="q", kind="dlq_growth", above=0))
    state.observe(2, True, 0.0)
    assert now(state) == "firing"
    assert state.observe(None, None, 10.0) is None
    assert now(state) == "firing" and state.value is None


def test_growth_counts_from_the_oldest_sample_inside_the_window() -> None:
    history: deque[tuple[float, float]] = deque()
    assert growth(history, 0.0, 100.0, 60.0) == 0.0
    assert growth(history, 30.0, 103.0, 60.0) == 3.0
    assert growth(history, 60.0, 104.0, 60.0) == 4.0  # base: the sample at 0 (exactly 60 s)
    assert growth(history, 95.0, 104.0, 60.0) == 1.0  # base: the sample at 30
    assert growth(history, 200.0, 104.0, 60.0) == 0.0
    assert growth(history, 210.0, None, 60.0) is None


# -- each kind, through the engine --------------------------------------------------------

async def test_spool_depth_fires_and_resolves_with_metric_and_state() -> None:
    clock, src, registry = Clock(), FakeSources(), CollectorRegistry()
    eng = engine({"name": "backlog", "kind": "spool_depth", "above": 2, "for": "10s",
                  "severity": "critical"}, clock=clock, sources=src, registry=registry)

    def gauge() -> float | None:
        return registry.get_sample_value("hl7gw_alerts_firing", {"rule": "backlog"})

    assert gauge() == 0
    src.depth_rows = 3
    assert await eng.evaluate() == [] and eng.status()[0]["state"] == "pending"
    clock.now += 10
    [fired] = await eng.evaluate()
    assert fired.state == "firing" and gauge() == 1
    [row] = eng.firing()
    assert row["name"] == "backlog" and row["value"] == 3 and row["threshold"] == 2
    assert row["severity"] == "critical" and row["delivery"] == "no webhook"
    src.depth_rows = 2  # not above 2
    clock.now += 5
    [resolved] = await eng.evaluate()
    assert resolved.state == "resolved" and gauge() == 0 and eng.firing() == []


async def test_silent_sender_measures_since_the_last_message() -> None:
    clock, src = Clock(), FakeSources()
    eng = engine({"name": "lab", "kind": "silent_sender", "sender": "SUNLAB", "minutes": 5},
                 clock=clock, sources=src)
    src.seen["SUNLAB"] = clock.now - 200
    assert await eng.evaluate() == []
    assert eng.status()[0]["value"] == 200 and eng.status()[0]["state"] == "ok"
    clock.now += 101  # 301 s > 300 s
    [fired] = await eng.evaluate()
    assert fired.state == "firing" and fired.value == 301
    src.seen["SUNLAB"] = clock.now - 1
    [resolved] = await eng.evaluate()
    assert resolved.state == "resolved"


async def test_silent_sender_never_heard_from_counts_from_the_first_evaluation() -> None:
    clock, src = Clock(), FakeSources()
    eng = engine({"name": "any", "kind": "silent_sender", "minutes": 1}, clock=clock,
                 sources=src)
    assert await eng.evaluate() == []
    clock.now += 61
    [fired] = await eng.evaluate()
    assert fired.value == 61


async def test_publish_lag_is_the_oldest_pending_age() -> None:
    clock, src = Clock(), FakeSources()
    eng = engine({"name": "lag", "kind": "publish_lag", "seconds": 60}, clock=clock,
                 sources=src)
    assert await eng.evaluate() == [] and eng.status()[0]["value"] == 0.0  # none pending
    src.oldest = clock.now - 61
    [fired] = await eng.evaluate()
    assert fired.value == 61


async def test_error_ratio_needs_its_minimum_and_reads_its_window() -> None:
    clock, src = Clock(), FakeSources()
    eng = engine({"name": "err", "kind": "error_ratio", "above": 0.1, "window": "15m",
                  "min_messages": 10, "sender": "LAB|A"}, clock=clock, sources=src)
    src.counts = (3, 5)  # 62 % refused, but only 8 messages: not yet
    assert await eng.evaluate() == []
    assert src.count_calls[-1] == (clock.now - 900, "LAB|A")
    src.counts = (9, 1)  # exactly 10 %, not above
    assert await eng.evaluate() == []
    src.counts = (8, 2)
    [fired] = await eng.evaluate()
    assert fired.value == pytest.approx(0.2)


async def test_dlq_growth_over_its_window_and_kafka_silence() -> None:
    clock, src = Clock(), FakeSources()
    eng = engine({"name": "dlq", "kind": "dlq_growth", "above": 1, "window": "10m"},
                 clock=clock, sources=src)
    src.dlq = 5
    assert await eng.evaluate() == []  # the first sample is the base
    clock.now += 60
    src.dlq = 7
    [fired] = await eng.evaluate()
    assert fired.value == 2
    src.dlq = None  # Kafka silent: state kept, value unknown
    clock.now += 60
    assert await eng.evaluate() == []
    assert eng.status()[0]["state"] == "firing" and eng.status()[0]["value"] is None
    clock.now += 700
    src.dlq = 7  # nothing new for a whole window
    [resolved] = await eng.evaluate()
    assert resolved.state == "resolved"


async def test_a_failing_source_makes_the_value_unknown_not_the_engine_stop() -> None:
    class Broken(FakeSources):
        async def depth(self) -> int:
            raise OSError("disk gone")

    clock, src = Clock(), Broken()
    src.oldest = clock.now - 5
    eng = engine({"name": "d", "kind": "spool_depth", "above": 0},
                 {"name": "lag", "kind": "publish_lag", "seconds": 0},
                 clock=clock, sources=src)
    changes = await eng.evaluate()
    assert [c.rule for c in changes] == ["lag"]
    assert eng.status()[0]["value"] is None and eng.status()[0]["state"] == "ok"


def test_payload_has_numbers_and_names_only() -> None:
    clock, src = Clock(), FakeSources()
    eng = engine({"name": "lab", "kind": "silent_sender", "sender": "SUNLAB", "minutes": 1},
                 clock=clock, sources=src)
    state = eng.states["lab"]
    from gateway.alerts.rules import Transition

    body = eng.payload(state, Transition("lab", "firing", 75.0, clock.now))
    assert body == {"name": "lab", "kind": "silent_sender", "severity": "warning",
                    "state": "firing", "value": 75.0, "threshold": 60.0,
                    "unit": "seconds since the last message", "sender": "SUNLAB",
                    "since": clock.now, "source": "urn:test"}


# -- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [(0, 0.0), ("0s", 0.0), ("90s", 90.0),
                                               ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0),
                                               ("12", 12.0), (1.5, 1.5)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "-1s", True, "", [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_rule_names_are_unique_and_kinds_known() -> None:
    with pytest.raises(ValidationError, match="two rules are named 'a'"):
        AlertSettings.model_validate({"rules": [
            {"name": "a", "kind": "spool_depth", "above": 1},
            {"name": "a", "kind": "publish_lag", "seconds": 1}]})
    with pytest.raises(ValidationError, match="kind"):
        AlertSettings.model_validate({"rules": [{"name": "a", "kind": "cpu", "above": 1}]})


GW = """\
listeners:
  - name: adt
    port: 2600
kafka:
  bootstrap_servers: 127.0.0.1:9092
alerts:
  rules:
    - name: backlog
      kind: spool_depth
      above: 10
      for: {for_}
  webhook:
    url: https://hooks.example.org/x
    headers:
      Authorization: ${{env:HOOK_TOKEN}}
"""


def test_config_file_with_env_secret(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(GW.format(for_="2m"))
    settings = load_settings(path, env={"HOOK_TOKEN": "Bearer s3cret"})
    assert settings.alerts is not None
    [r] = settings.alerts.rules
    assert r.for_s == 120.0 and r.kind == "spool_depth"
    assert settings.alerts.webhook is not None
    assert settings.alerts.webhook.headers["Authorization"].get_secret_value() == "Bearer s3cret"
    assert "s3cret" not in repr(settings.alerts)


def test_config_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(GW.format(for_="soon"))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"HOOK_TOKEN": "x"})
    message = str(info.value)
    assert f"{path}:11:" in message and "alerts.rules[0]" in message and "for" in message
    assert "'soon' is not a duration" in message


# -- the spool as a source ----------------------------------------------------------------

async def test_spool_sources_count_and_find_on_a_real_spool(tmp_path: Path) -> None:
    import time

    from gateway.alerts.engine import SpoolSources
    from gateway.spool import Spool
    from gateway.spool.records import Accepted, Rejected

    spool = Spool(tmp_path / "spool.db")
    await spool.start()
    try:
        src = SpoolSources(spool)
        assert await src.counts_since(0, None) == (0, 0)
        assert await src.last_seen(None) is None
        before = time.time()
        for i, sender in enumerate(["LAB|A", "LAB|A", "LAB|B", "ADT|A"]):
            await spool.store(Accepted(
                listener="t", peer="p", sender=sender, control_id=f"C{i}",
                message_type="ORU^R01", sha256=f"{i:064d}", raw=b"MSH|x\r", ack=b"MSA\r",
                event_id=f"e{i}"))
        await spool.store(Rejected(listener="t", peer="p", sender="LAB|A", control_id="X",
                                   ack_code="AR", err_code="200", reason="r", raw=b"x",
                                   ack=b"MSA|AR\r"))
        assert await src.counts_since(0, None) == (4, 1)
        assert await src.counts_since(0, "LAB|A") == (2, 1)
        assert await src.counts_since(0, "LAB") == (3, 1)  # every facility of LAB
        assert await src.counts_since(time.time() + 60, None) == (0, 0)  # outside the window
        seen = await src.last_seen("ADT")
        assert seen is not None and seen >= before - 1
        assert await src.last_seen("NOBODY") is None
        assert await src.depth() == 4
        oldest = await src.oldest_pending()
        assert oldest is not None and oldest >= before - 1
        assert await src.dlq_total() is None  # no bridge: unknown
    finally:
        await spool.stop()
