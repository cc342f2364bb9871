"""NEWS2 scoring against the RCP chart (2017): every band boundary, both sides of it.

Each threshold of the chart is tested with the value on it and the value just past it,
so moving any band edge by one fails a test. The worked cases at the end are built for
these tests from the chart (not copied from the RCP report); their totals were added up
by hand, parameter by parameter, in the comments.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.cloud.news2 import (
    Acvpu,
    Parameter,
    RiskBand,
    Vitals,
    air_or_oxygen_score,
    consciousness_score,
    pulse_score,
    respiration_rate_score,
    risk_band,
    score,
    spo2_scale1_score,
    spo2_scale2_score,
    systolic_bp_score,
    temperature_score,
)


@pytest.mark.parametrize(("rate", "points"), [
    (0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)])
def test_respiration_rate_bands(rate: float, points: int) -> None:
    assert respiration_rate_score(rate) == points


@pytest.mark.parametrize(("spo2", "points"), [
    (70, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)])
def test_spo2_scale1_bands(spo2: float, points: int) -> None:
    assert spo2_scale1_score(spo2) == points


@pytest.mark.parametrize(("spo2", "points"), [
    (70, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0)])
def test_spo2_scale2_below_93_scores_the_same_on_air_oxygen_or_unknown(
        spo2: float, points: int) -> None:
    assert spo2_scale2_score(spo2, on_oxygen=False) == points
    assert spo2_scale2_score(spo2, on_oxygen=True) == points
    assert spo2_scale2_score(spo2, on_oxygen=None) == points


@pytest.mark.parametrize("spo2", [93, 94, 95, 96, 97, 100])
def test_spo2_scale2_at_93_or_more_on_air_scores_0(spo2: float) -> None:
    assert spo2_scale2_score(spo2, on_oxygen=False) == 0


@pytest.mark.parametrize(("spo2", "points"), [
    (92, 0), (93, 1), (94, 1), (95, 2), (96, 2), (97, 3), (100, 3)])
def test_spo2_scale2_on_oxygen_scores_high_saturation(spo2: float, points: int) -> None:
    assert spo2_scale2_score(spo2, on_oxygen=True) == points


def test_spo2_scale2_at_93_or_more_cannot_be_scored_without_air_or_oxygen() -> None:
    assert spo2_scale2_score(93, on_oxygen=None) is None
    assert spo2_scale2_score(99, on_oxygen=None) is None


def test_air_scores_0_and_oxygen_2() -> None:
    assert air_or_oxygen_score(False) == 0
    assert air_or_oxygen_score(True) == 2


@pytest.mark.parametrize(("mmhg", "points"), [
    (60, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3),
    (250, 3)])
def test_systolic_bp_bands(mmhg: float, points: int) -> None:
    assert systolic_bp_score(mmhg) == points


@pytest.mark.parametrize(("rate", "points"), [
    (30, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2),
    (130, 2), (131, 3), (180, 3)])
def test_pulse_bands(rate: float, points: int) -> None:
    assert pulse_score(rate) == points


@pytest.mark.parametrize(("level", "points"), [
    (Acvpu.ALERT, 0), (Acvpu.CONFUSION, 3), (Acvpu.VOICE, 3), (Acvpu.PAIN, 3),
    (Acvpu.UNRESPONSIVE, 3)])
def test_consciousness_alert_is_0_anything_else_3(level: Acvpu, points: int) -> None:
    assert consciousness_score(level) == points


@pytest.mark.parametrize(("celsius", "points"), [
    (33.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1),
    (39.1, 2), (41.0, 2)])
def test_temperature_bands(celsius: float, points: int) -> None:
    assert temperature_score(celsius) == points


@pytest.mark.parametrize(("call", "value", "points"), [
    (systolic_bp_score, 90.4, 3), (systolic_bp_score, 90.5, 2),      # rounds to 90 / 91
    (respiration_rate_score, 20.49, 0), (respiration_rate_score, 20.5, 2),
    (pulse_score, 130.5, 3), (spo2_scale1_score, 95.5, 0),
    (temperature_score, 35.04, 3), (temperature_score, 35.05, 1),    # to 35.0 / 35.1
    (temperature_score, 38.04, 0), (temperature_score, 38.05, 1),
])
def test_values_between_chart_rows_round_half_up_to_the_charts_precision(
        call: Callable[[float], int], value: float, points: int) -> None:
    assert call(value) == points


@pytest.mark.parametrize(("total", "subs", "band"), [
    (0, [0] * 7, RiskBand.LOW),
    (4, [1, 1, 1, 1, 0, 0, 0], RiskBand.LOW),
    (3, [3, 0, 0, 0, 0, 0, 0], RiskBand.LOW_MEDIUM),          # a single red score
    (4, [3, 1, 0, 0, 0, 0, 0], RiskBand.LOW_MEDIUM),
    (5, [1, 1, 1, 1, 1, 0, 0], RiskBand.MEDIUM),
    (5, [3, 2, 0, 0, 0, 0, 0], RiskBand.MEDIUM),              # 5 wins over the red score
    (6, [2, 2, 2, 0, 0, 0, 0], RiskBand.MEDIUM),
    (7, [2, 2, 2, 1, 0, 0, 0], RiskBand.HIGH),
    (20, [3, 3, 2, 3, 3, 3, 3], RiskBand.HIGH),
])
def test_risk_bands(total: int, subs: list[int], band: RiskBand) -> None:
    assert risk_band(total, subs) is band


def well(**changes: object) -> Vitals:
    """A set of vitals scoring 0 on every parameter, with ``changes`` applied."""
    base: dict[str, object] = {"respiration_rate": 16, "spo2": 97, "on_oxygen": False,
                               "systolic_bp": 125, "pulse": 72,
                               "consciousness": Acvpu.ALERT, "temperature": 36.8}
    return Vitals(**{**base, **changes})  # type: ignore[arg-type]


# -- worked cases (built from the chart for these tests; totals added up by hand) -------

def test_case_well_adult_scores_0_low() -> None:
    # RR 16: 0, SpO2 97 (scale 1): 0, air: 0, SBP 125: 0, pulse 72: 0, alert: 0, 36.8: 0
    result = score(well())
    assert result.complete and result.total == 0 and result.band is RiskBand.LOW
    assert dict(result.sub_scores) == dict.fromkeys(Parameter, 0)


def test_case_new_confusion_alone_is_low_medium() -> None:
    # everything 0 but new confusion: 3 -> total 3, a single red score -> low-medium
    result = score(well(consciousness=Acvpu.CONFUSION))
    assert result.total == 3 and result.band is RiskBand.LOW_MEDIUM
    assert result.red == (Parameter.CONSCIOUSNESS,)


def test_case_sample_message_scores_6_medium() -> None:
    # samples/oru_r01_vitals.hl7: RR 22: 2, SpO2 95: 1, oxygen (2 L/min): 2, SBP 118: 0,
    # pulse 88: 0, alert: 0, 38.4: 1 -> 6, medium
    result = score(Vitals(22, 95, True, 118, 88, Acvpu.ALERT, 38.4))
    assert [result.sub_scores[p] for p in Parameter] == [2, 1, 2, 0, 0, 0, 1]
    assert result.total == 6 and result.band is RiskBand.MEDIUM


def test_case_septic_picture_is_high() -> None:
    # RR 26: 3, SpO2 91: 3, oxygen: 2, SBP 95: 2, pulse 115: 2, voice: 3, 39.5: 2 -> 17
    result = score(Vitals(26, 91, True, 95, 115, Acvpu.VOICE, 39.5))
    assert result.total == 17 and result.band is RiskBand.HIGH


def test_case_every_parameter_at_its_worst_is_20() -> None:
    # RR 8: 3, SpO2 91: 3, oxygen: 2, SBP 90: 3, pulse 40: 3, unresponsive: 3, 35.0: 3
    result = score(Vitals(8, 91, True, 90, 40, Acvpu.UNRESPONSIVE, 35.0))
    assert result.total == 20 and result.band is RiskBand.HIGH


def test_case_copd_on_scale_2() -> None:
    # SpO2 89 on air: scale 1 gives 3 (low-medium); scale 2 gives 0 -> total 0, low
    assert score(well(spo2=89)).band is RiskBand.LOW_MEDIUM
    on_air = score(well(spo2=89, spo2_scale=2))
    assert on_air.total == 0 and on_air.band is RiskBand.LOW
    # SpO2 97 on oxygen, scale 2: 3 + oxygen 2 -> 5, medium (scale 1 would give 0 + 2)
    on_oxygen = score(well(spo2=97, on_oxygen=True, spo2_scale=2))
    assert on_oxygen.sub_scores[Parameter.SPO2] == 3
    assert on_oxygen.total == 5 and on_oxygen.band is RiskBand.MEDIUM
    assert score(well(spo2=97, on_oxygen=True)).total == 2


# -- incomplete sets ---------------------------------------------------------------------

def test_a_missing_parameter_gives_no_total_and_no_band() -> None:
    result = score(well(temperature=None, pulse=None))
    assert not result.complete
    assert result.missing == (Parameter.PULSE, Parameter.TEMPERATURE)
    assert result.total is None and result.band is None
    assert Parameter.TEMPERATURE not in result.sub_scores


def test_red_scores_are_known_even_when_incomplete() -> None:
    result = score(Vitals(respiration_rate=30))
    assert result.total is None and result.red == (Parameter.RESPIRATION_RATE,)
    assert len(result.missing) == 6


def test_scale_2_high_saturation_without_air_or_oxygen_is_missing_not_zero() -> None:
    result = score(well(spo2=95, on_oxygen=None, spo2_scale=2))
    assert result.missing == (Parameter.SPO2, Parameter.AIR_OR_OXYGEN)
    assert result.total is None
    assert any("scale 2" in note for note in result.notes)
