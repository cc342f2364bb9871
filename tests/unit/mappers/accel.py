"""Test helpers for the two forms the mapper runs in (see ``mappers._accel``)."""

from __future__ import annotations

import pytest

from mappers._accel import status

COMPILED = status().startswith("compiled")

# A test that replaces a module function with monkeypatch sees no effect on compiled code,
# whose call sites are bound at build time; such tests run in the pure-Python pass that
# ``make test`` makes over tests/unit/mappers (HL7GW_PURE_PYTHON=1).
pure_only = pytest.mark.skipif(COMPILED, reason="patches module functions: runs in make "
                               "test's pure-Python pass (HL7GW_PURE_PYTHON=1)")
