"""A micro benchmark of the mapping hot path, for ``hl7gw bench``: messages per second.

Times ``parse``, ``convert`` and ``convert(validate=True)`` on a realistic ADT^A01 (the same
text as ``samples/adt_a01.hl7``) in one thread. Each figure is the median of five rounds,
so a noisy neighbour on a shared machine moves it less.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from importlib import resources

from mappers.conversion import convert
from mappers.hl7v2 import parse

# A copy of samples/adt_a01.hl7 shipped in the package (a test keeps the two equal).
ADT_A01 = (resources.files("mappers") / "data" / "adt_a01.hl7").read_bytes().decode()

_ROUNDS = 5


def run(n: int = 2000) -> dict[str, float]:
    """Messages per second (and microseconds per message) for parse, convert and validate."""
    if n < _ROUNDS:
        raise ValueError(f"n must be at least {_ROUNDS}")
    convert(ADT_A01, validate=True)  # load specs and fhir.resources outside the timing
    validate_n = max(_ROUNDS, n // 50)  # full model validation costs ~50x a conversion
    out: dict[str, float] = {"messages": float(n), "validated_messages": float(validate_n)}
    for name, fn, count in (
        ("parse", lambda: parse(ADT_A01), n),
        ("convert", lambda: convert(ADT_A01), n),
        ("convert_validate", lambda: convert(ADT_A01, validate=True), validate_n),
    ):
        seconds = _median_seconds_per_call(fn, count)
        out[f"{name}_per_s"] = round(1 / seconds, 1)
        out[f"{name}_us"] = round(seconds * 1e6, 1)
    return out


def _median_seconds_per_call(fn: Callable[[], object], count: int) -> float:
    per_round = max(1, count // _ROUNDS)
    rounds = []
    for _ in range(_ROUNDS):
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        rounds.append((time.perf_counter() - start) / per_round)
    return statistics.median(rounds)
