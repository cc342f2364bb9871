"""Trying a changed sender profile on recent messages before it goes live.

``make_candidate`` checks a profile's YAML and builds the set it would make live;
``run_trial`` maps the newest messages of its sender from the spool with the live set and
with that set, and reports what would change (``TrialReport``). Used by
``hl7gw profiles try`` (with ``ReadOnlySpool``) and the console's ``/console/try``.
See docs/profiles.md, "Trying a change before it goes live".
"""

from __future__ import annotations

from gateway.trial.candidate import (
    DRAFT_SUFFIX,
    Candidate,
    TrialError,
    check_file_name,
    drafts,
    make_candidate,
)
from gateway.trial.engine import (
    DEFAULT_EXAMPLES,
    DEFAULT_LAST,
    MAX_LAST,
    TrialReport,
    Window,
    compare,
    parse_since,
    run_trial,
)
from gateway.trial.source import MessageSource, ReadOnlySpool

__all__ = ["DEFAULT_EXAMPLES", "DEFAULT_LAST", "DRAFT_SUFFIX", "MAX_LAST", "Candidate",
           "MessageSource", "ReadOnlySpool", "TrialError", "TrialReport", "Window",
           "check_file_name", "compare", "drafts", "make_candidate", "parse_since",
           "run_trial"]
