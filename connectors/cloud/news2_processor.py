"""NEWS2 processor: vital signs in, a NEWS2 score and its risk band back to the EHR.

For each event whose Bundle holds NEWS2 vital-sign Observations (``news2_vitals``), the
readings are merged into the patient's latest ones (a :class:`VitalsStore`), scored
(``news2``), and answered with a FHIR Bundle of type ``collection`` per event:

- the **Patient**, copied from the incoming Bundle (the HL7 v2 answer needs its PID);
- an **Observation** of the aggregate, SNOMED CT 1104051000000101 "Royal College of
  Physicians NEWS2 (National Early Warning Score 2) total score", category ``survey``,
  ``valueInteger``, ``derivedFrom`` the readings scored, and one ``component`` per
  parameter with its sub-score (SNOMED CT's NEWS2 sub-score codes) or, for a missing or
  stale parameter, a ``dataAbsentReason`` saying which;
- a **RiskAssessment**, method NEWS2, ``basis`` the readings and the score Observation,
  ``prediction[0].qualitativeRisk`` the band (``urn:hl7gw:news2`` low / low-medium /
  medium / high, with ``risk-probability`` low / moderate / high beside it).

While a parameter is missing or stale there is no total and no band: the Observation has
a ``dataAbsentReason`` instead of a value, both resources are ``preliminary``, and a note
names what is missing. The sub-scores that are known are still listed, so a red score
(3) is visible. Resource ids are uuid5 of the event id, the kind and the patient, so a
retried event answers with the same ids. A Bundle without NEWS2 readings gets None
(nothing is sent back).

This is decision support: see docs/news2.md before using it for patients.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from connectors.cloud.news2 import Parameter, RiskBand
from connectors.cloud.news2_state import MemoryVitalsStore, VitalsStore
from connectors.cloud.news2_vitals import (
    MAX_AGE,
    NEWS2_SYSTEM,
    Assessment,
    Found,
    assess,
    find_vitals,
)
from connectors.events import Event

log = logging.getLogger(__name__)

SNOMED = "http://snomed.info/sct"
NEWS2_TOTAL = "1104051000000101"
_NEWS2 = "Royal College of Physicians NEWS2 (National Early Warning Score 2)"
_SUB_SCORES: dict[Parameter | int, tuple[str, str]] = {
    Parameter.RESPIRATION_RATE: ("1104301000000104", "respiration rate score"),
    1: ("1104311000000102", "oxygen saturation scale 1 score"),  # SpO2, by scale
    2: ("1104321000000108", "oxygen saturation scale 2 score"),
    Parameter.AIR_OR_OXYGEN: ("1104331000000105", "air or oxygen score"),
    Parameter.SYSTOLIC_BP: ("1104341000000101", "systolic blood pressure score"),
    Parameter.PULSE: ("1104351000000103", "pulse score"),
    Parameter.CONSCIOUSNESS: ("1104361000000100", "consciousness score"),
    Parameter.TEMPERATURE: ("1104371000000107", "temperature score"),
}
_RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
_BANDS: dict[RiskBand, tuple[str, str, str]] = {
    # band -> its display, risk-probability code and display
    RiskBand.LOW: ("Low clinical risk", "low", "Low likelihood"),
    RiskBand.LOW_MEDIUM: ("Low-medium clinical risk (a single parameter scored 3)",
                          "moderate", "Moderate likelihood"),
    RiskBand.MEDIUM: ("Medium clinical risk", "moderate", "Moderate likelihood"),
    RiskBand.HIGH: ("High clinical risk", "high", "High likelihood"),
}
_LABELS = {Parameter.RESPIRATION_RATE: "respiration rate", Parameter.SPO2: "SpO2",
           Parameter.AIR_OR_OXYGEN: "air or oxygen", Parameter.SYSTOLIC_BP: "systolic BP",
           Parameter.PULSE: "pulse", Parameter.CONSCIOUSNESS: "consciousness",
           Parameter.TEMPERATURE: "temperature"}
_DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
_NAMESPACE = uuid.UUID("3f1c2a9e-8d4b-5c7e-9a61-0b2d4e6f8a13")


class News2Processor:
    """Processor: scores NEWS2 from each patient's latest vital signs and answers with it."""

    def __init__(self, store: VitalsStore | None = None, *,
                 max_age: timedelta = MAX_AGE) -> None:
        self._store = store if store is not None else MemoryVitalsStore()
        self._max_age = max_age

    @property
    def store(self) -> VitalsStore:
        """Where the latest readings are kept."""
        return self._store

    async def process(self, event: Event, bundle: dict[str, Any]) -> dict[str, Any] | None:
        """The result Bundle for ``event``, or None when it holds no NEWS2 reading."""
        found = find_vitals(bundle)
        patients = _patients(bundle)
        entries: list[dict[str, Any]] = []
        for patient_id in found.patients():
            patient_entry = patients.get(patient_id)
            if patient_entry is None:  # the answer needs the Patient (PID) to go back
                log.warning("NEWS2 readings for a Patient not in the Bundle; not scored",
                            extra={"event_id": event.id})
                continue
            latest = await self._store.update(patient_id, found.readings.get(patient_id, {}),
                                              found.retracted.get(patient_id, set()))
            assessment = assess(latest, self._max_age)
            if assessment is None:
                continue
            entries += [patient_entry,
                        *_results(event.id, patient_id, assessment, found)]
        if not entries:
            return None
        result: dict[str, Any] = {"resourceType": "Bundle",
                                  "id": _id(event.id, "bundle"), "type": "collection"}
        if event.time:
            result["timestamp"] = event.time
        result["entry"] = entries
        return result

    async def aclose(self) -> None:
        """Close the store if it holds a client."""
        close = getattr(self._store, "aclose", None)
        if close is not None:
            await close()


def _id(event_id: str, kind: str, patient_id: str = "") -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{event_id}|{kind}|{patient_id}"))


def _patients(bundle: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Patient id -> a copy of its entry (fullUrl and resource only)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient" \
                and isinstance(resource.get("id"), str) and resource["id"] not in out:
            full_url = entry.get("fullUrl") or f"urn:uuid:{resource['id']}"
            out[resource["id"]] = {"fullUrl": full_url, "resource": resource}
    return out


def _results(event_id: str, patient_id: str, assessment: Assessment,
             found: Found) -> list[dict[str, Any]]:
    """The score Observation and the RiskAssessment entries for one patient."""
    score_id = _id(event_id, "news2-score", patient_id)
    risk_id = _id(event_id, "news2-risk", patient_id)
    subject = {"reference": f"Patient/{patient_id}"}
    status = "final" if assessment.score.complete else "preliminary"
    readings = dict.fromkeys(r.observation_id for r in assessment.used.values()
                             if r.observation_id is not None)
    used = [{"reference": f"Observation/{obs_id}"} for obs_id in readings]
    notes = _notes(assessment, found.problems.get(patient_id, []))
    method = {"coding": [{"system": SNOMED, "code": NEWS2_TOTAL,
                          "display": f"{_NEWS2} total score"}], "text": "NEWS2"}

    observation: dict[str, Any] = {
        "resourceType": "Observation", "id": score_id, "status": status,
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey", "display": "Survey"}]}],
        "code": {**method, "text": "NEWS2 total score"},
        "subject": subject, "effectiveDateTime": assessment.time}
    total = assessment.score.total
    if total is not None:
        observation["valueInteger"] = total
    else:
        observation["dataAbsentReason"] = {
            "coding": [{"system": _DATA_ABSENT, "code": "unknown", "display": "Unknown"}],
            "text": "NEWS2 incomplete: " + _absent_summary(assessment)}
    if used:
        observation["derivedFrom"] = used
    observation["component"] = _components(assessment)
    if notes:
        observation["note"] = [{"text": text} for text in notes]

    risk: dict[str, Any] = {
        "resourceType": "RiskAssessment", "id": risk_id, "status": status,
        "method": method, "code": method, "subject": subject,
        "occurrenceDateTime": assessment.time,
        "basis": [*used, {"reference": f"Observation/{score_id}"}]}
    band = assessment.score.band
    if band is not None:
        display, probability, probability_display = _BANDS[band]
        risk["prediction"] = [{
            "outcome": {"text": "Acute clinical deterioration"},
            "qualitativeRisk": {
                "coding": [{"system": NEWS2_SYSTEM, "code": band.value, "display": display},
                           {"system": _RISK_PROBABILITY, "code": probability,
                            "display": probability_display}],
                "text": f"NEWS2 {total}: {band.value} clinical risk"}}]
    if notes:
        risk["note"] = [{"text": text} for text in notes]
    return [{"fullUrl": f"urn:uuid:{score_id}", "resource": observation},
            {"fullUrl": f"urn:uuid:{risk_id}", "resource": risk}]


def _components(assessment: Assessment) -> list[dict[str, Any]]:
    """One component per parameter: its sub-score, or why there is none."""
    components = []
    for parameter in Parameter:
        key: Parameter | int = assessment.score.spo2_scale \
            if parameter is Parameter.SPO2 else parameter
        code, display = _SUB_SCORES[key]
        component: dict[str, Any] = {"code": {
            "coding": [{"system": SNOMED, "code": code, "display": f"{_NEWS2} - {display}"}],
            "text": f"NEWS2 {_LABELS[parameter]} score"}}
        points = assessment.score.sub_scores.get(parameter)
        if points is not None:
            component["valueInteger"] = points
        else:
            why = "stale" if parameter in assessment.stale else "missing"
            component["dataAbsentReason"] = {
                "coding": [{"system": _DATA_ABSENT, "code": "unknown", "display": "Unknown"}],
                "text": _why(parameter, why, assessment.max_age)}
        components.append(component)
    return components


def _why(parameter: Parameter, why: str, max_age: timedelta) -> str:
    hours = max_age.total_seconds() / 3600
    if why == "stale":
        return f"{_LABELS[parameter]}: stale (more than {hours:g} h before the newest reading)"
    return f"{_LABELS[parameter]}: missing"


def _absent_summary(assessment: Assessment) -> str:
    parts = []
    if assessment.missing:
        parts.append("missing " + ", ".join(_LABELS[p] for p in assessment.missing))
    if assessment.stale:
        hours = assessment.max_age.total_seconds() / 3600
        parts.append(f"stale (older than {hours:g} h) "
                     + ", ".join(_LABELS[p] for p in assessment.stale))
    return "; ".join(parts)


def _notes(assessment: Assessment, problems: list[str]) -> list[str]:
    notes = []
    if not assessment.score.complete:
        notes.append("No aggregate score: " + _absent_summary(assessment)
                     + ". Missing or stale parameters are not scored as normal.")
    if assessment.score.red:
        notes.append("Red score (3) in: "
                     + ", ".join(_LABELS[p] for p in assessment.score.red))
    notes.append(f"SpO2 scale {assessment.score.spo2_scale}"
                 + (" (prescribed)" if assessment.scale is not None else " (default)"))
    notes += assessment.score.notes
    notes += [f"Not used: {problem}" for problem in problems]
    return notes
