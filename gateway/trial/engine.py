"""Run a candidate profile over recent messages and report what would change.

Each message is mapped twice, as the gateway's worker maps it (``gateway.mapping.map_one``, the
charset and zone stored with the row): with the live set and with the candidate set. The
two Bundles are compared element by element (``gateway.bundle_diff``), and so are the
mapping issues, the unmapped fields and whether the message maps at all. Mapping runs in a
thread, a chunk at a time, so a console trial does not hold up MLLP connections.

Nothing is written: the source is only listed and read, no Kafka client exists here, and
no profile file is touched (applying is the console's separate, audited step).

The report carries counts (safe to log or audit) and up to ``examples`` examples with the
before/after values of one element each: those are message content (PHI), shown only to
the operator who ran the trial.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.bundle_diff import Change, diff_bundles, element_of
from gateway.mapping import map_one
from gateway.spool import MessageFilter, MessageInfo
from gateway.trial.candidate import Candidate, TrialError
from gateway.trial.source import MessageSource
from mappers.profiles import ProfileSet

DEFAULT_LAST = 500
MAX_LAST = 10_000
DEFAULT_EXAMPLES = 10
_PAGE = 1000  # metadata rows per listing while choosing messages
_CHUNK = 25  # messages mapped per trip to the thread (progress moves every chunk)
_SHOWN = 300  # characters of a before/after value kept in an example
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# (phase, done, total): phase "choosing" (rows listed so far) or "mapping"
Progress = Callable[[str, int, int], None]


def parse_since(text: str, now: float | None = None) -> float:
    """``24h``, ``30m``, ``7d`` back from now, or ISO 8601 (naive = local) -> Unix seconds."""
    value = text.strip()
    relative = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", value)
    if relative:
        return (now if now is not None else time.time()) - float(relative[1]) * _UNITS[
            relative[2]]
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise TrialError(f"since {value!r}: write a duration back from now (30m, 24h, 7d) "
                         "or an ISO 8601 time (2024-05-01T08:00)") from None


@dataclass(frozen=True)
class Window:
    """Which messages to try: the newest ``last`` received since ``since`` from ``sender``.

    ``sender``: ``APP^FAC`` (or ``APP``) as in MSH-3.1 / MSH-4.1; None: every sender the
    candidate (or the profile it replaces) matches.
    """

    since: float | None = None
    last: int = DEFAULT_LAST
    sender: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.last <= MAX_LAST:
            raise TrialError(f"last {self.last}: try between 1 and {MAX_LAST} messages")

    def wants(self, candidate: Candidate, stored_sender: str) -> bool:
        """Whether a row with this ``sender`` column (``APP^..|FAC^..``) is tried."""
        app_part, _, fac_part = stored_sender.partition("|")
        app, fac = app_part.split("^")[0], fac_part.split("^")[0]
        if self.sender:
            want_app, _, want_fac = self.sender.replace("|", "^").partition("^")
            return app == want_app and (not want_fac or fac == want_fac)
        return candidate.affects(app, fac)

    def describe(self, candidate: Candidate) -> str:
        """The senders tried, for the report: ``SUNLAB^RIVERSIDE``."""
        if self.sender:
            return self.sender
        app, fac, _ = candidate.profile.keys
        return f"{'|'.join(sorted(app)) if app else '*'}^{'|'.join(sorted(fac)) if fac else '*'}"


@dataclass
class Compared:
    """One message mapped both ways (what the thread hands back)."""

    row_id: int
    control_id: str
    before_error: str | None
    after_error: str | None
    changes: list[Change]
    issues_new: set[tuple[str, str]]
    issues_gone: set[tuple[str, str]]
    unmapped_new: set[str]
    unmapped_gone: set[str]


def compare(row: MessageInfo, raw: bytes, candidate: Candidate) -> Compared:
    """Map ``raw`` with the live set and with the candidate set; what differs."""
    def mapped(profiles: ProfileSet) -> tuple[Any, set[tuple[str, str]], set[str], str | None]:
        # gateway.mapping.map_one: exactly the worker's mapping (the row's charset and zone
        # at the sender level, the profile chosen from MSH)
        done = map_one(raw, row.charset, row.timezone, profiles)
        summary = json.loads(done.summary or "{}")
        issues = {(i["code"], i["location"]) for i in summary.get("issues") or ()}
        bundle = json.loads(done.payload) if done.payload is not None else None
        return bundle, issues, set(summary.get("unmapped") or ()), done.error

    b_bundle, issues_b, unmapped_b, b_error = mapped(candidate.current)
    a_bundle, issues_a, unmapped_a, a_error = mapped(candidate.proposed)
    changes = (diff_bundles(b_bundle, a_bundle)
               if b_bundle is not None and a_bundle is not None else [])
    return Compared(row.id, row.control_id, b_error, a_error, changes,
                    issues_a - issues_b, issues_b - issues_a,
                    unmapped_a - unmapped_b, unmapped_b - unmapped_a)


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           sort_keys=True)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 1] + "…"


@dataclass
class TrialReport:
    """What the candidate would change on the messages tried."""

    profile: str
    target: str
    replaces: str | None
    senders: str
    since: float | None
    last: int
    examples_wanted: int = DEFAULT_EXAMPLES
    tried: int = 0
    changed: int = 0
    now_failing: int = 0
    now_mapping: int = 0
    still_failing: int = 0
    seconds: float = 0.0
    elements: Counter[str] = field(default_factory=Counter)  # element -> messages
    element_changes: Counter[str] = field(default_factory=Counter)  # element -> changes
    issues_new: Counter[tuple[str, str]] = field(default_factory=Counter)
    issues_gone: Counter[tuple[str, str]] = field(default_factory=Counter)
    unmapped_new: Counter[str] = field(default_factory=Counter)
    unmapped_gone: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        """Messages whose Bundle, issues and unmapped fields stay the same."""
        return self.tried - self.changed

    def add(self, c: Compared) -> None:
        """Count one compared message in."""
        self.tried += 1
        differs = bool(c.changes or c.issues_new or c.issues_gone or c.unmapped_new
                       or c.unmapped_gone or (c.before_error is None) != (c.after_error is None))
        self.changed += differs
        if c.before_error is None and c.after_error is not None:
            self.now_failing += 1
            if len(self.failures) < self.examples_wanted:
                self.failures.append({"id": c.row_id, "control_id": c.control_id,
                                      "error": c.after_error})
        elif c.before_error is not None and c.after_error is None:
            self.now_mapping += 1
        elif c.before_error is not None:
            self.still_failing += 1
        per_message = Counter(element_of(ch.path) for ch in c.changes)
        self.elements.update(per_message.keys())
        self.element_changes.update(per_message)
        self.issues_new.update(c.issues_new)
        self.issues_gone.update(c.issues_gone)
        self.unmapped_new.update(c.unmapped_new)
        self.unmapped_gone.update(c.unmapped_gone)
        shown = {e["element"] for e in self.examples}
        for ch in c.changes:  # one example per element first: the widest picture
            element = element_of(ch.path)
            if len(self.examples) >= self.examples_wanted or element in shown:
                continue
            shown.add(element)
            self.examples.append({"id": c.row_id, "control_id": c.control_id,
                                  "element": element, "path": ch.path, "kind": ch.kind,
                                  "before": _shown(ch.before), "after": _shown(ch.after)})

    def counts(self) -> str:
        """One line of counts, no message content: for the audit log and logs."""
        return (f"tried {self.tried}, changed {self.changed}, now failing {self.now_failing}"
                f", elements {len(self.elements)}")

    def as_json(self) -> dict[str, Any]:
        """The report for ``--json`` and the API."""
        return {
            "profile": self.profile, "target": self.target, "replaces": self.replaces,
            "senders": self.senders, "since": self.since, "last": self.last,
            "tried": self.tried, "changed": self.changed, "unchanged": self.unchanged,
            "now_failing": self.now_failing, "now_mapping": self.now_mapping,
            "still_failing": self.still_failing, "seconds": round(self.seconds, 3),
            "elements": [{"element": e, "messages": n, "changes": self.element_changes[e]}
                         for e, n in sorted(self.elements.items(), key=lambda kv: (-kv[1],
                                                                                   kv[0]))],
            "issues": {"new": _issue_rows(self.issues_new),
                       "gone": _issue_rows(self.issues_gone)},
            "unmapped": {"new": _field_rows(self.unmapped_new),
                         "gone": _field_rows(self.unmapped_gone)},
            "failures": self.failures, "examples": self.examples}


def _issue_rows(counter: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"code": code, "location": loc, "messages": n}
            for (code, loc), n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]


def _field_rows(counter: Counter[str]) -> list[dict[str, Any]]:
    return [{"field": f, "messages": n}
            for f, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]


def _compare_all(found: list[tuple[MessageInfo, bytes]], candidate: Candidate
                 ) -> list[Compared]:
    return [compare(row, raw, candidate) for row, raw in found]


async def choose(source: MessageSource, candidate: Candidate, window: Window,
                 progress: Progress | None = None) -> list[MessageInfo]:
    """The newest ``window.last`` rows the trial covers (metadata only), newest first.

    With a source that lists its senders (``ReadOnlySpool``), only the rows of the senders
    wanted are read, through the sender index; otherwise pages of every row are listed.
    """
    listing = getattr(source, "senders", None)
    if listing is not None:
        chosen: list[MessageInfo] = []
        for sender in await listing():
            if "|" in sender and window.wants(candidate, sender):
                chosen += await source.find(MessageFilter(sender=sender, since=window.since),
                                            limit=window.last)
                if progress is not None:
                    progress("choosing", len(chosen), len(chosen))
        return sorted(chosen, key=lambda r: -r.id)[:window.last]
    chosen = []
    listed = 0
    before: int | None = None
    where = MessageFilter(since=window.since)
    while len(chosen) < window.last:
        rows = await source.find(where, limit=_PAGE, before_id=before)
        listed += len(rows)
        chosen += [r for r in rows if window.wants(candidate, r.sender)][:window.last
                                                                          - len(chosen)]
        if progress is not None:
            progress("choosing", listed, listed)
        if len(rows) < _PAGE:
            break
        before = rows[-1].id
    return chosen


async def run_trial(candidate: Candidate, source: MessageSource, window: Window, *,
                    examples: int = DEFAULT_EXAMPLES,
                    progress: Progress | None = None) -> TrialReport:
    """Try ``candidate`` on the window's messages; reads only, maps in a thread."""
    started = time.monotonic()
    report = TrialReport(candidate.name, candidate.target,
                         candidate.replaces.path if candidate.replaces else None,
                         window.describe(candidate), window.since, window.last,
                         examples_wanted=examples)
    rows = await choose(source, candidate, window, progress)
    if progress is not None:
        progress("mapping", 0, len(rows))
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        bodies = [(row, await source.body(row.id)) for row in chunk]
        found = [(row, body.raw) for row, body in bodies if body is not None]
        compared = await asyncio.to_thread(_compare_all, found, candidate)
        for c in compared:
            report.add(c)
        if progress is not None:
            progress("mapping", start + len(chunk), len(rows))
    report.seconds = time.monotonic() - started
    return report
