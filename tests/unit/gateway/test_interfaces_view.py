"""The Interfaces page's rules: silence, connection state, sender names, listener rows."""

from __future__ import annotations

from gateway.config import ListenerSettings, SenderSettings
from gateway.console.interfaces_stats import SenderTraffic
from gateway.console.interfaces_view import (
    MIN_SILENCE_S,
    configured_entry,
    connection_state,
    error_ratio,
    listener_json,
    silence,
    split_sender,
)
from gateway.mllp.server import OpenConnection

NOW = 1_800_000_000.0


def test_a_sender_is_silent_past_four_usual_gaps() -> None:
    # 11 messages over 100 min: the usual gap is 10 min; silent after 40 min, not before
    first, last = NOW - 100 * 60, NOW
    assert silence(11, first, last, NOW + 39 * 60).silent is False
    late = silence(11, first, last, NOW + 41 * 60)
    assert late.silent is True
    assert late.usual_gap_s == 600.0 and late.silent_for_s == 41 * 60


def test_a_busy_sender_is_not_silent_before_the_floor() -> None:
    # every 10 s: four gaps are 40 s, but nothing is flagged under five minutes
    first, last = NOW - 1000, NOW
    assert silence(101, first, last, NOW + MIN_SILENCE_S - 1).silent is False
    assert silence(101, first, last, NOW + MIN_SILENCE_S + 1).silent is True


def test_too_few_messages_claim_nothing() -> None:
    verdict = silence(2, NOW - 60, NOW, NOW + 86000)
    assert verdict.silent is None and verdict.usual_gap_s is None
    assert verdict.silent_for_s == 86000
    assert silence(0, None, None, NOW).silent_for_s is None


def test_connection_state_by_peer_then_by_host() -> None:
    assert connection_state("10.0.0.1:4000", ["10.0.0.1:4000"]) == "connected"
    assert connection_state("10.0.0.1:4000", ["10.0.0.1:4001"]) == "host connected"
    assert connection_state("10.0.0.1:4000", ["10.0.0.11:4000"]) == "not connected"
    assert connection_state("::1:4000", ["::1:5000"]) == "host connected"  # as peers read
    assert connection_state(None, ["10.0.0.1:4000"]) == "not connected"


def test_senders_read_as_application_and_facility() -> None:
    assert split_sender("SUNLAB|RIVERSIDE^2.16.840.1.113883.19.5^ISO") == ("SUNLAB",
                                                                         "RIVERSIDE")
    assert split_sender("APP^1.2^ISO|") == ("APP", "")
    entries = [SenderSettings(application="SUNLAB", facility="*")]
    assert configured_entry(entries, "SUNLAB|RIVERSIDE^2.16^ISO") is entries[0]
    assert configured_entry(entries, "SUNLABX|RIVERSIDE") is None


def test_error_ratio() -> None:
    assert error_ratio(3, 1) == 0.25
    assert error_ratio(0, 0) is None


def test_a_listener_lists_senders_seen_and_configured_ones_not_seen() -> None:
    settings = ListenerSettings(name="lab", senders=[
        SenderSettings(application="SUNLAB", facility="RIVERSIDE"),
        SenderSettings(application="QUIET", facility="*")])
    seen = SenderTraffic("lab", "SUNLAB|RIVERSIDE^1.2^ISO", accepted_1h=2, accepted_24h=5,
                         refused_24h={"AR": 1}, types_24h={"ADT^A01": 5}, first_at=NOW - 400,
                         last_at=NOW - 100, last_peer="10.0.0.1:4000")
    elsewhere = SenderTraffic("other", "X|Y", accepted_24h=1, last_at=NOW)
    conn = OpenConnection("10.0.0.1:4000", NOW - 500, messages=6, last_message_at=NOW - 100)
    out = listener_json(settings, 2575, [conn], [seen, elsewhere], NOW)
    assert [s["application"] for s in out["senders"]] == ["SUNLAB", "QUIET"]
    sun, quiet = out["senders"]
    assert sun["state"] == "connected" and sun["metric_label"] == "SUNLAB|RIVERSIDE"
    assert sun["counts_24h"] == {"accepted": 5, "AR": 1}
    assert sun["error_ratio_24h"] == round(1 / 6, 4)
    assert sun["silent"] is False and sun["usual_gap_s"] == 60.0
    assert quiet["configured"] and quiet["last_message_at"] is None
    assert quiet["metric_label"] == "QUIET|*"
    assert out["connections"] == [{"peer": "10.0.0.1:4000", "since": NOW - 500,
                                   "messages": 6, "last_message_at": NOW - 100}]
