"""NEWS2 scoring, as charted by the Royal College of Physicians (National Early Warning
Score 2, 2017): pure functions, no I/O, no clock.

Seven parameters each score 0 to 3 (air or oxygen: 0 or 2):

================  ======  =======  =======  =========  =========  =======  =====
parameter            3       2        1         0          1         2       3
================  ======  =======  =======  =========  =========  =======  =====
respiration /min   <= 8             9-11     12-20                 21-24    >= 25
SpO2 scale 1 %     <= 91   92-93    94-95    >= 96
SpO2 scale 2 %     <= 83   84-85    86-87    88-92,     93-94 O2   95-96 O2 >= 97 O2
                                             >= 93 air
air or oxygen                                air                   oxygen
systolic BP mmHg   <= 90   91-100   101-110  111-219                        >= 220
pulse /min         <= 40            41-50    51-90      91-110     111-130  >= 131
consciousness                                A (alert)                      C V P U
temperature degC   <= 35.0          35.1-36  36.1-38.0  38.1-39.0  >= 39.1
================  ======  =======  =======  =========  =========  =======  =====

Scale 2 is for patients with hypercapnic respiratory failure whose target saturation a
clinician set at 88-92 %; everyone else is scored on scale 1. The chart gives whole
numbers (temperature to one decimal), so a value is rounded half up to that precision
before it is banded: 90.4 mmHg is 90 (scores 3), 35.05 degC is 35.1 (scores 1).

The aggregate is the sum; its clinical risk band is low (0-4), low-medium (0-4 with any
single parameter scoring 3, "a red score"), medium (5-6) or high (7 or more). A parameter
that cannot be scored (no reading, a stale one, or SpO2 >= 93 % on scale 2 without knowing
whether the patient breathes air or oxygen) is never counted as normal: the :class:`Score`
then lists it as missing and has no total and no band.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Literal

SpO2Scale = Literal[1, 2]


class Parameter(StrEnum):
    """The seven NEWS2 parameters, in the chart's order."""

    RESPIRATION_RATE = "respiration-rate"
    SPO2 = "spo2"
    AIR_OR_OXYGEN = "air-or-oxygen"
    SYSTOLIC_BP = "systolic-bp"
    PULSE = "pulse"
    CONSCIOUSNESS = "consciousness"
    TEMPERATURE = "temperature"


class Acvpu(StrEnum):
    """Level of consciousness: Alert, new Confusion, Voice, Pain, Unresponsive."""

    ALERT = "A"
    CONFUSION = "C"
    VOICE = "V"
    PAIN = "P"
    UNRESPONSIVE = "U"


class RiskBand(StrEnum):
    """The clinical risk the aggregate score stands for."""

    LOW = "low"
    LOW_MEDIUM = "low-medium"
    MEDIUM = "medium"
    HIGH = "high"


def _whole(value: float, places: str = "1") -> Decimal:
    """``value`` rounded half up to the chart's precision (``"1"`` or ``"0.1"``)."""
    return Decimal(str(value)).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def _banded(value: Decimal, upper_bounds: tuple[tuple[str, int], ...], above: int) -> int:
    """The score of the first band whose inclusive upper bound ``value`` does not exceed."""
    for bound, points in upper_bounds:
        if value <= Decimal(bound):
            return points
    return above


def respiration_rate_score(per_minute: float) -> int:
    """<= 8: 3; 9-11: 1; 12-20: 0; 21-24: 2; >= 25: 3."""
    return _banded(_whole(per_minute), (("8", 3), ("11", 1), ("20", 0), ("24", 2)), 3)


def spo2_scale1_score(percent: float) -> int:
    """<= 91: 3; 92-93: 2; 94-95: 1; >= 96: 0."""
    return _banded(_whole(percent), (("91", 3), ("93", 2), ("95", 1)), 0)


def spo2_scale2_score(percent: float, on_oxygen: bool | None) -> int | None:
    """<= 83: 3; 84-85: 2; 86-87: 1; 88-92: 0; >= 93 on air: 0; on oxygen 93-94: 1,
    95-96: 2, >= 97: 3. None for >= 93 % when air or oxygen is not known."""
    value = _whole(percent)
    if value <= Decimal("92"):
        return _banded(value, (("83", 3), ("85", 2), ("87", 1)), 0)
    if on_oxygen is None:
        return None
    if not on_oxygen:
        return 0
    return _banded(value, (("94", 1), ("96", 2)), 3)


def air_or_oxygen_score(on_oxygen: bool) -> int:
    """Air: 0; supplemental oxygen: 2."""
    return 2 if on_oxygen else 0


def systolic_bp_score(mmhg: float) -> int:
    """<= 90: 3; 91-100: 2; 101-110: 1; 111-219: 0; >= 220: 3."""
    return _banded(_whole(mmhg), (("90", 3), ("100", 2), ("110", 1), ("219", 0)), 3)


def pulse_score(per_minute: float) -> int:
    """<= 40: 3; 41-50: 1; 51-90: 0; 91-110: 1; 111-130: 2; >= 131: 3."""
    return _banded(_whole(per_minute),
                   (("40", 3), ("50", 1), ("90", 0), ("110", 1), ("130", 2)), 3)


def consciousness_score(level: Acvpu) -> int:
    """Alert: 0; new confusion, voice, pain or unresponsive: 3."""
    return 0 if level is Acvpu.ALERT else 3


def temperature_score(celsius: float) -> int:
    """<= 35.0: 3; 35.1-36.0: 1; 36.1-38.0: 0; 38.1-39.0: 1; >= 39.1: 2."""
    return _banded(_whole(celsius, "0.1"),
                   (("35.0", 3), ("36.0", 1), ("38.0", 0), ("39.0", 1)), 2)


def risk_band(total: int, sub_scores: Iterable[int]) -> RiskBand:
    """High from 7, medium from 5, else low-medium when one parameter scored 3, else low."""
    if total >= 7:
        return RiskBand.HIGH
    if total >= 5:
        return RiskBand.MEDIUM
    if any(points >= 3 for points in sub_scores):
        return RiskBand.LOW_MEDIUM
    return RiskBand.LOW


@dataclass(frozen=True)
class Vitals:
    """One set of observations to score; None is a parameter with no usable reading."""

    respiration_rate: float | None = None  # /min
    spo2: float | None = None              # %
    on_oxygen: bool | None = None          # supplemental oxygen (True) or air (False)
    systolic_bp: float | None = None       # mm[Hg]
    pulse: float | None = None             # /min
    consciousness: Acvpu | None = None
    temperature: float | None = None       # Cel
    spo2_scale: SpO2Scale = 1


@dataclass(frozen=True)
class Score:
    """Sub-scores of the parameters that could be scored, and those that could not."""

    sub_scores: Mapping[Parameter, int]
    missing: tuple[Parameter, ...]
    spo2_scale: SpO2Scale
    notes: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        """Every parameter was scored, so the total and the band mean what the chart says."""
        return not self.missing

    @property
    def total(self) -> int | None:
        """The aggregate score; None while a parameter is missing (never a partial sum)."""
        return sum(self.sub_scores.values()) if self.complete else None

    @property
    def band(self) -> RiskBand | None:
        """The clinical risk band; None while a parameter is missing."""
        total = self.total
        return None if total is None else risk_band(total, self.sub_scores.values())

    @property
    def red(self) -> tuple[Parameter, ...]:
        """Parameters scoring 3 ("red scores"), known even when others are missing."""
        return tuple(p for p, points in self.sub_scores.items() if points >= 3)


def score(vitals: Vitals) -> Score:
    """Score ``vitals``; parameters without a value are listed in ``Score.missing``."""
    scores: dict[Parameter, int] = {}
    notes: list[str] = []
    if vitals.respiration_rate is not None:
        scores[Parameter.RESPIRATION_RATE] = respiration_rate_score(vitals.respiration_rate)
    if vitals.spo2 is not None:
        if vitals.spo2_scale == 2:
            points = spo2_scale2_score(vitals.spo2, vitals.on_oxygen)
            if points is None:
                notes.append("SpO2 of 93 % or more on scale 2 is scored by air or oxygen,"
                             " which is not known")
            else:
                scores[Parameter.SPO2] = points
        else:
            scores[Parameter.SPO2] = spo2_scale1_score(vitals.spo2)
    if vitals.on_oxygen is not None:
        scores[Parameter.AIR_OR_OXYGEN] = air_or_oxygen_score(vitals.on_oxygen)
    if vitals.systolic_bp is not None:
        scores[Parameter.SYSTOLIC_BP] = systolic_bp_score(vitals.systolic_bp)
    if vitals.pulse is not None:
        scores[Parameter.PULSE] = pulse_score(vitals.pulse)
    if vitals.consciousness is not None:
        scores[Parameter.CONSCIOUSNESS] = consciousness_score(vitals.consciousness)
    if vitals.temperature is not None:
        scores[Parameter.TEMPERATURE] = temperature_score(vitals.temperature)
    ordered = {p: scores[p] for p in Parameter if p in scores}
    missing = tuple(p for p in Parameter if p not in scores)
    return Score(ordered, missing, vitals.spo2_scale, tuple(notes))
