"""What the Interfaces page shows, worked out from spool counts and open connections.

Pure functions (no I/O), so the rules are tested on their own:

- **Silent for longer than usual.** A sender's usual gap is the mean time between its
  messages over the last 24 h: (last - first) / (messages - 1). It is *silent* when the
  time since its last message is more than ``SILENCE_FACTOR`` (4) times that gap and at
  least ``MIN_SILENCE_S`` (5 min), so a sender that sends every 10 s is flagged after
  5 min, one that sends every 30 min after 2 h. With fewer than ``MIN_MESSAGES`` (3)
  messages in 24 h there is no usual gap, and nothing is claimed.
- **Connected.** ``connected`` when the connection its last message came on is still
  open; ``host connected`` when another connection from the same host is open (it
  reconnected and has not sent since); otherwise ``not connected``.
- **Sender names.** The spool keeps MSH-3|MSH-4 whole (``SUNLAB|RIVERSIDE^2.16.840...^ISO``);
  the page shows their first components, application and facility, with the whole value
  as a tooltip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config import ListenerSettings, SenderSettings
from gateway.console.interfaces_stats import SenderTraffic
from gateway.metrics import OTHER_SENDER, sender_label
from gateway.mllp.server import OpenConnection

SILENCE_FACTOR = 4.0
MIN_SILENCE_S = 300.0
MIN_MESSAGES = 3


@dataclass(frozen=True)
class Silence:
    """The silence rule's inputs and verdict (None: too few messages to tell)."""

    usual_gap_s: float | None
    silent_for_s: float | None
    silent: bool | None


def silence(count: int, first_at: float | None, last_at: float | None, now: float
            ) -> Silence:
    """Whether a sender is silent for longer than usual (see the module docstring)."""
    silent_for = max(0.0, now - last_at) if last_at is not None else None
    if count < MIN_MESSAGES or first_at is None or last_at is None or silent_for is None:
        return Silence(None, silent_for, None)
    gap = max(last_at - first_at, 0.0) / (count - 1)
    return Silence(gap, silent_for, silent_for > max(SILENCE_FACTOR * gap, MIN_SILENCE_S))


def split_sender(sender: str) -> tuple[str, str]:
    """(application, facility): the first components of MSH-3 and MSH-4."""
    app, _, facility = sender.partition("|")
    return app.split("^")[0], facility.split("^")[0]


def configured_entry(senders: Sequence[SenderSettings], sender: str
                     ) -> SenderSettings | None:
    """The listener's ``senders:`` entry for a spool ``sender`` value, as intake matches."""
    app, facility = split_sender(sender)
    return next((s for s in senders if s.matches(app, facility)), None)


def connection_state(last_peer: str | None, open_peers: Iterable[str]) -> str:
    """``connected``, ``host connected`` or ``not connected`` (see the module docstring)."""
    peers = set(open_peers)
    if last_peer is None:
        return "not connected"
    if last_peer in peers:
        return "connected"
    host = last_peer.rsplit(":", 1)[0]
    if any(p.rsplit(":", 1)[0] == host for p in peers):
        return "host connected"
    return "not connected"


def error_ratio(accepted: int, refused: int) -> float | None:
    """Refused / all answered, or None with no traffic."""
    total = accepted + refused
    return round(refused / total, 4) if total else None


def sender_json(t: SenderTraffic, entry: SenderSettings | None, open_peers: list[str],
                now: float) -> dict[str, Any]:
    """One sender's row for the API and the page."""
    app, facility = split_sender(t.sender)
    quiet = silence(t.total_24h, t.first_at, t.last_at, now)
    refused_1h, refused_24h = sum(t.refused_1h.values()), sum(t.refused_24h.values())
    return {
        "sender": t.sender, "application": app, "facility": facility,
        "configured": entry is not None,
        "metric_label": sender_label(entry),
        "state": connection_state(t.last_peer, open_peers), "last_peer": t.last_peer,
        "last_message_at": t.last_at,
        "counts_1h": {"accepted": t.accepted_1h, **t.refused_1h},
        "counts_24h": {"accepted": t.accepted_24h, **t.refused_24h},
        "types_1h": t.types_1h, "types_24h": t.types_24h,
        "error_ratio_1h": error_ratio(t.accepted_1h, refused_1h),
        "error_ratio_24h": error_ratio(t.accepted_24h, refused_24h),
        "usual_gap_s": _round(quiet.usual_gap_s), "silent_for_s": _round(quiet.silent_for_s),
        "silent": quiet.silent,
    }


def quiet_entry_json(entry: SenderSettings) -> dict[str, Any]:
    """A configured sender with nothing in the last 24 h."""
    return {"sender": sender_label(entry), "application": entry.application,
            "facility": entry.facility, "configured": True,
            "metric_label": sender_label(entry), "state": "not connected", "last_peer": None,
            "last_message_at": None, "counts_1h": {"accepted": 0},
            "counts_24h": {"accepted": 0}, "types_1h": {}, "types_24h": {},
            "error_ratio_1h": None, "error_ratio_24h": None, "usual_gap_s": None,
            "silent_for_s": None, "silent": None}


def listener_json(settings: ListenerSettings, port: int, connections: list[OpenConnection],
                  traffic: Iterable[SenderTraffic], now: float, *, running: bool = True,
                  configured: bool = True) -> dict[str, Any]:
    """A listener with its open connections and every sender seen on it (or configured)."""
    peers = [c.peer for c in connections]
    senders = [sender_json(t, configured_entry(settings.senders, t.sender), peers, now)
               for t in traffic if t.listener == settings.name]
    seen = {s["metric_label"] for s in senders}
    senders += [quiet_entry_json(e) for e in settings.senders
                if sender_label(e) not in seen and sender_label(e) != OTHER_SENDER]
    return {"name": settings.name, "host": settings.host, "port": port,
            "tls": settings.tls is not None, "running": running, "configured": configured,
            "connections": [{"peer": c.peer, "since": c.since, "messages": c.messages,
                             "last_message_at": c.last_message_at} for c in connections],
            "senders": senders}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
