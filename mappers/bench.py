"""A micro benchmark of the mapping hot path, for ``hl7gw bench map``: messages per second.

Times ``convert`` for a realistic sample of every supported message type (the repository's
``samples/adt_a01.hl7`` and ``samples/messages/*.hl7``; a built wheel carries them as
``mappers/data/``, put there by the build from that one folder), plus
``parse`` and ``check`` of the ADT^A01 and ``convert(validate=True)`` (full fhir.resources
model validation) of the ADT^A01 and the 10-OBX ORU^R01. One thread; each figure is the
median of five rounds, so a noisy neighbour on a shared machine moves it less. Like the
mapping worker, it freezes the loaded specs out of the garbage collector's sight first.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from mappers.conversion import check, convert
from mappers.hl7v2 import parse

if TYPE_CHECKING:
    from mappers.profiles import Profile

# In a checkout: the samples folder. In an installed wheel: mappers/data, which the wheel
# build copies from that folder (pyproject.toml, force-include): the one copy in the tree.
_REPO_SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _sample(name: str) -> str:
    packaged = resources.files("mappers") / "data" / f"{name}.hl7"
    places = [packaged, _REPO_SAMPLES / f"{name}.hl7", _REPO_SAMPLES / "messages" / f"{name}.hl7"]
    for place in places:
        if place.is_file():
            return place.read_bytes().decode()
    raise FileNotFoundError(f"sample message {name}.hl7 not found (looked in mappers/data "
                            f"and {_REPO_SAMPLES}): hl7gw bench map needs the samples")


ADT_A01 = _sample("adt_a01")
ORU_R01_10_OBX = _sample("oru_r01_10obx")
# label -> sample: one per message type (the label names the type and, if needed, the shape)
SAMPLES: dict[str, str] = {
    "ADT^A01": ADT_A01,
    "ADT^A03 (NK1 AL1 DG1 PR1 IN1 OBX)": _sample("adt_a03"),
    "ADT^A40": _sample("adt_a40"),
    "ORU^R01 10 OBX": ORU_R01_10_OBX,
    "ORU^R01 13 OBX 2 OBR ED": _sample("oru_r01"),
    "ORM^O01": _sample("orm_o01"),
    "OML^O21": _sample("oml_o21"),
    "SIU^S12": _sample("siu_s12"),
    "MDM^T02": _sample("mdm_t02"),
    "VXU^V04": _sample("vxu_v04"),
    "RDE^O11": _sample("rde_o11"),
}
VALIDATED = ("ADT^A01", "ORU^R01 10 OBX")
# The 10-OBX ORU from a sender with a profile: local codes translated, a code table entry
# added, an identifier system named and a Z-segment after each OBX mapped to an extension.
PROFILED = "ORU^R01 10 OBX, sender profile"
_PROFILE = """
profile: bench
match: {application: SUNLAB}
identifier_systems: {RIVERSIDE: "https://riverside.example/sid/mrn"}
codes: {"0078": {HIGHISH: H}}
local_codes:
  - {system: LN, code: "718-7", to: {system: "https://riverside.example/tests", code: HGB}}
fields:
  - {field: ZLB-2, resource: Observation, type: ST, extension: "https://riverside.example/an"}
"""


def _profiled() -> tuple[str, Profile]:
    """The profiled sample and its profile (loaded on first use: specs compile ~20 ms)."""
    from mappers.profiles import ProfileSet

    text = "\r".join(seg + ("\rZLB|1|Cobas 8000" if seg.startswith("OBX|") else "")
                     for seg in ORU_R01_10_OBX.split("\r"))
    return text, ProfileSet.from_sources({"bench.yaml": _PROFILE}).get("bench")

# A long text report: every OBX line shares OBX-3 (and an empty OBX-4), so each one's id
# comes from the collision suffix (``#2``, ``#3``...): the case that was once quadratic.
REPORT = "ORU^R01 5000-line report"
REPORT_LINES = 5000


def text_report(lines: int) -> str:
    """The 10-OBX ORU's header and order with ``lines`` TX OBX lines of one report instead."""
    head = [seg for seg in ORU_R01_10_OBX.split("\r") if seg[:3] not in ("OBX", "SPM", "")]
    body = [f"OBX|{i}|TX|11502-2^Laboratory report^LN||Line {i} of the report: no remarkable "
            "findings.||||||F" for i in range(1, lines + 1)]
    return "\r".join(head + body) + "\r"


_ROUNDS = 5


def run(n: int = 2000) -> dict[str, float]:
    """Messages per second per message type (flat: ``"ADT^A01 convert msg/s"`` -> rate)."""
    if n < _ROUNDS:
        raise ValueError(f"n must be at least {_ROUNDS}")
    for text in SAMPLES.values():
        convert(text, validate=True)  # load specs and fhir.resources outside the timing
    gc.collect()
    gc.freeze()  # as the mapping worker does once its specs are loaded (gateway.mapping)
    try:
        validate_n = max(_ROUNDS, n // 50)  # full model validation costs ~20-50x a conversion
        out: dict[str, float] = {
            "ADT^A01 parse msg/s": _rate(lambda: parse(ADT_A01), n),
            "ADT^A01 check msg/s": _rate(lambda: check(ADT_A01), n),
        }
        for label, text in SAMPLES.items():
            out[f"{label} convert msg/s"] = _rate(partial(convert, text), n)
            if label in VALIDATED:
                out[f"{label} convert+validate msg/s"] = _rate(
                    partial(convert, text, validate=True), validate_n)
        text, profile = _profiled()
        out[f"{PROFILED} convert msg/s"] = _rate(partial(convert, text, profile=profile), n)
        # ~1,000x the work of one 5-OBX message: a count that keeps the row to seconds
        out[f"{REPORT} convert msg/s"] = _rate(partial(convert, text_report(REPORT_LINES)),
                                               max(_ROUNDS, n // 400))
    finally:
        gc.unfreeze()
    return out


def _rate(fn: Callable[[], object], count: int) -> float:
    return round(1 / _median_seconds_per_call(fn, count), 1)


def _median_seconds_per_call(fn: Callable[[], object], count: int) -> float:
    per_round = max(1, count // _ROUNDS)
    rounds = []
    for _ in range(_ROUNDS):
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        rounds.append((time.perf_counter() - start) / per_round)
    return statistics.median(rounds)


def loop(label: str, count: int) -> None:
    """Convert one sample ``count`` times after a warm-up, GC off: for instruction counts.

    ``make bench-instructions`` runs this under valgrind's callgrind twice (10 and 60
    conversions) and prints the difference per conversion, which, unlike wall-clock time
    on a shared machine, is the same from run to run.
    """
    profile: Profile | None = None
    if label == PROFILED:
        text, profile = _profiled()
    else:
        text = SAMPLES[label]
    for _ in range(20):
        convert(text, profile=profile)
    gc.disable()
    for _ in range(count):
        convert(text, profile=profile)


if __name__ == "__main__":
    import sys

    loop(sys.argv[1], int(sys.argv[2]))
