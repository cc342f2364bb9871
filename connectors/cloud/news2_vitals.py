"""The NEWS2 parameters in a FHIR Bundle, a patient's latest readings, and what is stale.

Which Observations count (coded ``http://loinc.org`` unless said otherwise):

=================  ========================================  ============================
parameter          Observation.code                          value
=================  ========================================  ============================
respiration rate   9279-1                                    Quantity ``/min``
SpO2               59408-5 (pulse oximetry), 2708-6          Quantity ``%``
air or oxygen      3151-8 inhaled O2 flow rate               Quantity ``L/min``: > 0 is O2
                   3150-0 inhaled O2 concentration           Quantity ``%``: > 21 is O2
                   ``urn:hl7gw:news2#on-oxygen``, or either  boolean, or coded ``Y``/``N``,
                   LOINC code with a coded value             "air", "room air", "oxygen"
systolic BP        8480-6, or a component 8480-6 of the      Quantity ``mm[Hg]``
                   BP panel 85354-9
pulse              8867-4                                    Quantity ``/min``
consciousness      67775-7, 80288-4                          coded or text: a code A, C, V,
                                                             P or U, or the word (alert,
                                                             new confusion, voice, pain,
                                                             unresponsive)
temperature        8310-5                                    Quantity ``Cel`` or ``[degF]``
SpO2 scale         ``urn:hl7gw:news2#spo2-scale``            1 or 2 (integer, quantity,
                                                             string or code)
=================  ========================================  ============================

Units are UCUM codes (``Quantity.code``, else ``Quantity.unit``). A reading that cannot be
read (another unit, a comparator such as ``>``, an unknown consciousness word, no time of
day with an offset) is not used and is reported, never guessed. Observations that are
``registered``, ``cancelled`` or ``entered-in-error`` are not readings; one entered in
error also withdraws the stored reading it had given.

Staleness is judged against the newest reading of the patient's seven parameters, not
against the clock: a reading more than 4 hours older than that one is stale. The clock
would make the same event score differently when the bridge retries it or an operator
replays it an hour later; the newest reading is the moment the score describes. The SpO2
scale is a prescription, not a measurement: it never goes stale, and without one scale 1
applies, as the RCP chart says.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connectors.cloud.news2 import Acvpu, Parameter, Score, SpO2Scale, Vitals, score

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NEWS2_SYSTEM = "urn:hl7gw:news2"  # the project's codes: spo2-scale, on-oxygen, risk bands
BP_PANEL = "85354-9"
SCALE = "spo2-scale"  # the slot of the SpO2 scale beside the seven parameters
ON_OXYGEN = "on-oxygen"
MAX_AGE = timedelta(hours=4)

_NUMERIC: dict[str, tuple[Parameter, dict[str, float | None]]] = {
    # LOINC code -> parameter, accepted UCUM units (None: the value is taken as it is)
    "9279-1": (Parameter.RESPIRATION_RATE,
               {"/min": None, "{breaths}/min": None, "1/min": None}),
    "59408-5": (Parameter.SPO2, {"%": None}),
    "2708-6": (Parameter.SPO2, {"%": None}),
    "8480-6": (Parameter.SYSTOLIC_BP, {"mm[Hg]": None}),
    "8867-4": (Parameter.PULSE, {"/min": None, "{beats}/min": None, "1/min": None}),
    "8310-5": (Parameter.TEMPERATURE, {"Cel": None, "[degF]": None}),
}
_OXYGEN_FLOW, _OXYGEN_CONCENTRATION = "3151-8", "3150-0"
_CONSCIOUSNESS = frozenset({"67775-7", "80288-4"})
_SKIPPED_STATUS = frozenset({"registered", "cancelled", "entered-in-error"})
_ACVPU_LETTERS = {level.value: level for level in Acvpu}
_ACVPU_WORDS = {
    "alert": Acvpu.ALERT, "new confusion": Acvpu.CONFUSION, "confusion": Acvpu.CONFUSION,
    "confused": Acvpu.CONFUSION, "voice": Acvpu.VOICE, "responds to voice": Acvpu.VOICE,
    "pain": Acvpu.PAIN, "responds to pain": Acvpu.PAIN, "unresponsive": Acvpu.UNRESPONSIVE,
}
_AIR_WORDS = {"air": False, "room air": False, "n": False, "no": False,
              "oxygen": True, "supplemental oxygen": True, "o2": True, "y": True, "yes": True}


class Unreadable(ValueError):
    """An Observation for a NEWS2 parameter whose value cannot be used; says why."""


@dataclass(frozen=True)
class Reading:
    """The latest value of one parameter: float, bool (on oxygen) or an ACVPU letter."""

    value: float | bool | str
    time: str  # FHIR dateTime with a time of day and an offset, as the Observation had it
    observation_id: str | None

    @property
    def at(self) -> datetime:
        """``time`` as an aware datetime (for ordering and staleness)."""
        return _instant(self.time)

    def to_json(self) -> dict[str, Any]:
        """The stored form (``from_json`` reads it back)."""
        return {"value": self.value, "time": self.time, "observation": self.observation_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reading:
        """A reading from its stored form."""
        value = data["value"]
        if not isinstance(value, bool | str):
            value = float(value)
        observation = data.get("observation")
        return cls(value, str(data["time"]), observation if isinstance(observation, str)
                   else None)


@dataclass
class Found:
    """What one Bundle holds for NEWS2, per Patient resource id."""

    readings: dict[str, dict[str, Reading]] = field(default_factory=dict)
    retracted: dict[str, set[str]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def patients(self) -> list[str]:
        """Patients with a reading or a retraction, in the order first met."""
        return list(dict.fromkeys([*self.readings, *self.retracted]))


def find_vitals(bundle: Mapping[str, Any]) -> Found:
    """The newest reading of each parameter per patient in ``bundle``, and what was unusable."""
    found = Found()
    for obs in _observations(bundle):
        patient = _patient_id(obs)
        if patient is None:
            continue
        status = obs.get("status")
        obs_id = obs.get("id") if isinstance(obs.get("id"), str) else None
        for slot, holder in _slots(obs):
            if status == "entered-in-error":
                if obs_id is not None:
                    found.retracted.setdefault(patient, set()).add(obs_id)
                break
            if status in _SKIPPED_STATUS:
                break
            try:
                reading = Reading(_value(slot, holder), _time(obs), obs_id)
            except Unreadable as exc:
                where = f"Observation/{obs_id}" if obs_id else "an Observation"
                found.problems.setdefault(patient, []).append(f"{slot}: {where}: {exc}")
                continue
            newest = found.readings.setdefault(patient, {})
            if slot not in newest or reading.at >= newest[slot].at:
                newest[slot] = reading
    return found


def merge(current: Mapping[str, Reading], incoming: Mapping[str, Reading],
          retracted: Collection[str] = ()) -> dict[str, Reading]:
    """``current`` updated: a reading as new or newer replaces it, an older one never does.

    Readings from an Observation in ``retracted`` (entered in error) are dropped first.
    """
    merged = {slot: r for slot, r in current.items() if r.observation_id not in retracted}
    for slot, reading in incoming.items():
        old = merged.get(slot)
        if old is None or reading.at >= old.at:
            merged[slot] = reading
    return merged


@dataclass(frozen=True)
class Assessment:
    """A patient's NEWS2 from the latest readings: the score and what it rests on."""

    score: Score
    time: str                          # the newest parameter reading's time
    used: dict[Parameter, Reading]     # the readings scored, by parameter
    stale: tuple[Parameter, ...]       # a reading exists but is too old
    missing: tuple[Parameter, ...]     # no reading, or one that cannot be scored yet
    scale: Reading | None              # the SpO2 scale prescription, when one was sent
    max_age: timedelta


def assess(latest: Mapping[str, Reading], max_age: timedelta = MAX_AGE) -> Assessment | None:
    """Score the latest readings; None when there is no parameter reading at all."""
    params = {p: latest[p.value] for p in Parameter if p.value in latest}
    if not params:
        return None
    newest = max(params.values(), key=lambda r: r.at)
    fresh = {p: r for p, r in params.items() if newest.at - r.at <= max_age}
    stale = tuple(p for p in params if p not in fresh)
    scale_reading = latest.get(SCALE)
    scale: SpO2Scale = 2 if scale_reading is not None and scale_reading.value == 2 else 1
    result = score(_vitals(fresh, scale))
    return Assessment(
        score=result, time=newest.time,
        used={p: fresh[p] for p in result.sub_scores},
        stale=stale, missing=tuple(p for p in result.missing if p not in stale),
        scale=scale_reading, max_age=max_age)


def _vitals(fresh: Mapping[Parameter, Reading], scale: SpO2Scale) -> Vitals:
    def number(p: Parameter) -> float | None:
        reading = fresh.get(p)
        return float(reading.value) if reading is not None else None

    oxygen = fresh.get(Parameter.AIR_OR_OXYGEN)
    level = fresh.get(Parameter.CONSCIOUSNESS)
    return Vitals(respiration_rate=number(Parameter.RESPIRATION_RATE),
                  spo2=number(Parameter.SPO2),
                  on_oxygen=bool(oxygen.value) if oxygen is not None else None,
                  systolic_bp=number(Parameter.SYSTOLIC_BP), pulse=number(Parameter.PULSE),
                  consciousness=Acvpu(str(level.value)) if level is not None else None,
                  temperature=number(Parameter.TEMPERATURE), spo2_scale=scale)


# -- reading one Observation --------------------------------------------------------------

def _observations(bundle: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    if bundle.get("resourceType") != "Bundle":
        return
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Observation":
            yield resource


def _patient_id(obs: Mapping[str, Any]) -> str | None:
    subject = obs.get("subject")
    ref = subject.get("reference") if isinstance(subject, dict) else None
    if isinstance(ref, str) and ref.startswith("Patient/") and len(ref) > len("Patient/"):
        return ref[len("Patient/"):]
    return None


def _codes(concept: Any) -> list[tuple[str | None, str]]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return [(c.get("system"), c["code"]) for c in codings or []
            if isinstance(c, dict) and isinstance(c.get("code"), str)]


def _slot_of(concept: Any) -> str | None:
    for system, code in _codes(concept):
        if system == LOINC:
            if code in _NUMERIC:
                return _NUMERIC[code][0].value
            if code in (_OXYGEN_FLOW, _OXYGEN_CONCENTRATION):
                return Parameter.AIR_OR_OXYGEN.value
            if code in _CONSCIOUSNESS:
                return Parameter.CONSCIOUSNESS.value
        elif system == NEWS2_SYSTEM and code in (SCALE, ON_OXYGEN):
            return SCALE if code == SCALE else Parameter.AIR_OR_OXYGEN.value
    return None


def _slots(obs: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(slot, the element holding code and value): the Observation, or BP panel components."""
    code = obs.get("code")
    if (LOINC, BP_PANEL) in _codes(code):
        for component in obs.get("component") or []:
            if isinstance(component, dict) and \
                    (LOINC, "8480-6") in _codes(component.get("code")):
                yield Parameter.SYSTOLIC_BP.value, component
        return
    slot = _slot_of(code)
    if slot is not None:
        yield slot, dict(obs)


def _value(slot: str, holder: Mapping[str, Any]) -> float | bool | str:
    if slot == Parameter.CONSCIOUSNESS.value:
        return _acvpu(holder).value
    if slot == SCALE:
        return _scale(holder)
    if slot == Parameter.AIR_OR_OXYGEN.value:
        return _on_oxygen(holder)
    codes = [c for s, c in _codes(holder.get("code")) if s == LOINC and c in _NUMERIC]
    units = _NUMERIC[codes[0]][1] if codes else {}
    value, unit = _quantity(holder, units)
    if unit == "[degF]":
        return (value - 32.0) * 5.0 / 9.0
    return value


def _quantity(holder: Mapping[str, Any], units: Mapping[str, float | None]
              ) -> tuple[float, str]:
    quantity = holder.get("valueQuantity")
    if not isinstance(quantity, dict):
        raise Unreadable("no valueQuantity")
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unreadable("no numeric value")
    if quantity.get("comparator"):
        raise Unreadable(f"a value with comparator {quantity['comparator']!r} cannot be banded")
    unit = quantity.get("code") or quantity.get("unit")
    if unit not in units:
        raise Unreadable(f"unit {unit!r} is not one of {', '.join(units)} (UCUM)")
    return float(value), str(unit)


def _words(holder: Mapping[str, Any]) -> list[str]:
    """The codes, displays and text of a coded or string value, lower case."""
    words: list[str] = []
    concept = holder.get("valueCodeableConcept")
    if isinstance(concept, dict):
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict):
                words += [str(coding[k]) for k in ("code", "display") if coding.get(k)]
        if concept.get("text"):
            words.append(str(concept["text"]))
    if isinstance(holder.get("valueString"), str):
        words.append(holder["valueString"])
    return [w.strip().lower() for w in words if w.strip()]


def _acvpu(holder: Mapping[str, Any]) -> Acvpu:
    levels = {_ACVPU_LETTERS.get(w.upper()) or _ACVPU_WORDS[w] for w in _words(holder)
              if w.upper() in _ACVPU_LETTERS or w in _ACVPU_WORDS}
    if len(levels) != 1:
        raise Unreadable("no single ACVPU level (A, C, V, P, U) in the value"
                         if not levels else "the value names more than one ACVPU level")
    return levels.pop()


def _on_oxygen(holder: Mapping[str, Any]) -> bool:
    if isinstance(holder.get("valueBoolean"), bool):
        return bool(holder["valueBoolean"])
    if isinstance(holder.get("valueQuantity"), dict):
        codes = {c for s, c in _codes(holder.get("code")) if s == LOINC}
        if _OXYGEN_FLOW in codes:
            value, _ = _quantity(holder, {"L/min": None})
            return value > 0
        if _OXYGEN_CONCENTRATION in codes:
            value, _ = _quantity(holder, {"%": None})
            return value > 21
        raise Unreadable("a quantity for air or oxygen needs LOINC 3151-8 or 3150-0")
    answers = {_AIR_WORDS[w] for w in _words(holder) if w in _AIR_WORDS}
    if len(answers) != 1:
        raise Unreadable("the value says neither air nor oxygen" if not answers
                         else "the value says both air and oxygen")
    return answers.pop()


def _scale(holder: Mapping[str, Any]) -> float:
    raw: object = holder.get("valueInteger")
    if raw is None and isinstance(holder.get("valueQuantity"), dict):
        raw = holder["valueQuantity"].get("value")
    if raw is None:
        words = _words(holder)
        raw = words[0] if words else None
    try:
        value = float(str(raw)) if not isinstance(raw, bool) else 0.0
    except ValueError:
        value = 0.0
    if value not in (1.0, 2.0):
        raise Unreadable("the SpO2 scale must be 1 or 2")
    return value


def _time(obs: Mapping[str, Any]) -> str:
    period = obs.get("effectivePeriod")
    candidates = [obs.get("effectiveDateTime"), obs.get("effectiveInstant")]
    if isinstance(period, dict):
        candidates += [period.get("end"), period.get("start")]
    for value in candidates:
        if isinstance(value, str):
            _instant(value)
            return value
    raise Unreadable("no effective time")


def _instant(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Unreadable(f"effective time {value!r} is not a FHIR dateTime") from None
    if len(value) <= 10 or parsed.tzinfo is None:
        raise Unreadable("the effective time needs a time of day and an offset")
    return parsed
