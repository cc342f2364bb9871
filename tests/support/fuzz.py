"""One settings object for every property-based fuzz test (``hypothesis``), and its marker.

* ``make test``: ``examples`` per target (a few thousand, seconds each) and
  ``derandomize=True``: the examples follow from the test's own name, so every run tries the
  same inputs and a failure reproduces by running the test again.
* ``make fuzz`` (nights, releases): ``HL7GW_FUZZ_EXAMPLES`` examples per target, drawn at
  random from the seed ``make fuzz`` chooses and prints (``--hypothesis-seed``); rerun with
  that seed, or paste the ``@reproduce_failure`` blob hypothesis prints, to replay a find.

A find becomes an ``@example(...)`` on its test, next to the fix, so it is tried every run.
No example database is written (``database=None``): runs leave no files behind.
"""

from __future__ import annotations

import os
from typing import Final

import pytest
from hypothesis import HealthCheck, settings

ENV: Final = "HL7GW_FUZZ_EXAMPLES"
fuzz: Final = pytest.mark.fuzz


def fuzz_settings(examples: int = 2000) -> settings:
    """``examples`` examples, derandomized; ``$HL7GW_FUZZ_EXAMPLES`` random ones instead."""
    override = os.environ.get(ENV, "").strip()
    return settings(
        max_examples=int(override) if override else examples,
        derandomize=not override,
        database=None,
        deadline=None,  # a loaded machine makes timings meaningless; counts bound the run
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much],
    )
