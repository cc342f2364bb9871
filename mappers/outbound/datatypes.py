"""Every datatype writer, registered: import ``WRITERS`` from here, not from ``writers``.

The writers live in two modules (``writers``: the registry and the simple types;
``writers_composite``: XCN, PL, ED, SN); importing both here, in one direction, fills the
registry without an import cycle.
"""

from __future__ import annotations

from mappers.outbound import writers_composite  # noqa: F401 - registers its writers
from mappers.outbound.writers import WRITERS, Writing

__all__ = ["WRITERS", "Writing"]
