"""Remote-monitoring processor: vital-sign Observations checked against thresholds.

Each Observation in the Bundle (and each component of a blood-pressure panel, LOINC
85354-9) with a known LOINC vital-sign code and a ``valueQuantity`` is compared with its
``low``/``high`` threshold; a value outside them becomes one alert CloudEvent (type
``hl7gw.alert.vital-sign``, subject ``Patient/<id>``) sent to an :class:`AlertSink`. The
alert's data holds the code, value, unit, the threshold crossed and the Observation id, no
names. Alert ids derive from the source event, the Observation and the code, so a replayed
event raises the same alert id and a sink can drop the repeat.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import orjson

from connectors.errors import ConnectorError, SettingsFileError
from connectors.events import Event
from hl7gw.yamlfile import load_file

LOINC = "http://loinc.org"
BP_PANEL = "85354-9"
ALERT_TYPE = "hl7gw.alert.vital-sign"
_ALERT_NAMESPACE = uuid.UUID("7b0e6f2c-56b1-4bd5-9a37-2f4c1e0f5a10")

# Adult defaults; sites override them with a YAML mapping of code -> {low, high}.
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "8867-4": {"low": 40, "high": 130},     # heart rate, /min
    "9279-1": {"low": 8, "high": 25},       # respiratory rate, /min
    "59408-5": {"low": 90},                 # SpO2 by pulse oximetry, %
    "2708-6": {"low": 90},                  # SpO2 arterial, %
    "8310-5": {"low": 35.0, "high": 38.5},  # body temperature, Cel
    "8480-6": {"low": 90, "high": 180},     # systolic blood pressure, mm[Hg]
    "8462-4": {"low": 50, "high": 110},     # diastolic blood pressure, mm[Hg]
}


@dataclass(frozen=True)
class Threshold:
    """Acceptable range for one LOINC code; either bound may be open."""

    low: float | None = None
    high: float | None = None

    def crossed(self, value: float) -> tuple[str, float] | None:
        """``("low", bound)`` or ``("high", bound)`` when ``value`` is outside, else None."""
        if self.low is not None and value < self.low:
            return "low", self.low
        if self.high is not None and value > self.high:
            return "high", self.high
        return None


def thresholds_from(data: Mapping[str, Any] | None = None) -> dict[str, Threshold]:
    """Thresholds from a mapping ``code -> {low, high}`` over the defaults.

    Raises ``ValueError`` naming the code (``load_thresholds`` adds the file and line).
    """
    merged: dict[str, Any] = {**DEFAULT_THRESHOLDS, **dict(data or {})}
    return {str(code): _threshold(code, bounds) for code, bounds in merged.items()}


def _threshold(code: object, bounds: object) -> Threshold:
    if not isinstance(bounds, Mapping) or not set(bounds) <= {"low", "high"}:
        raise ValueError(f"threshold for {code}: give a mapping with low and/or high")
    low, high = (_bound(code, side, bounds.get(side)) for side in ("low", "high"))
    if low is not None and high is not None and low > high:
        raise ValueError(f"threshold for {code}: low is above high")
    return Threshold(low, high)


def _bound(code: object, side: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        raise ValueError(f"threshold for {code}: {side} must be a finite number")
    return float(value)


def load_thresholds(path: Path) -> dict[str, Threshold]:
    """Thresholds from a YAML file (a mapping of LOINC code to low/high).

    Every mistake is a ``SettingsFileError`` reading ``file:line: what is wrong``.
    """
    doc = load_file(path, SettingsFileError, what="thresholds")
    data = doc.data or {}
    if not isinstance(data, Mapping):
        raise SettingsFileError(
            f"{path}:1: thresholds must be a mapping of LOINC code to low/high")
    for code, bounds in data.items():
        try:
            _threshold(code, bounds)
        except ValueError as exc:
            raise SettingsFileError(f"{path}:{doc.line((code,))}: {exc}") from None
    return thresholds_from(data)


@dataclass(frozen=True)
class Reading:
    """One vital-sign value found in a Bundle."""

    observation_id: str | None
    patient: str | None
    code: str
    value: float
    unit: str | None


def _loinc_codes(concept: Any) -> list[str]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return [c["code"] for c in codings or [] if isinstance(c, dict)
            and c.get("system") == LOINC and isinstance(c.get("code"), str)]


def _quantity(holder: dict[str, Any]) -> tuple[float, str | None] | None:
    quantity = holder.get("valueQuantity")
    if not isinstance(quantity, dict):
        return None
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    unit = quantity.get("code") or quantity.get("unit")
    return float(value), unit if isinstance(unit, str) else None


def _patient_of(observation: dict[str, Any]) -> str | None:
    ref = (observation.get("subject") or {}).get("reference")
    return ref if isinstance(ref, str) and ref.startswith("Patient/") else None


def readings(bundle: dict[str, Any], known: Mapping[str, Threshold]) -> Iterator[Reading]:
    """Vital-sign readings with a known code, from Observations and BP panel components."""
    for entry in bundle.get("entry") or []:
        obs = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(obs, dict) or obs.get("resourceType") != "Observation":
            continue
        if obs.get("status") in ("entered-in-error", "cancelled"):
            continue
        obs_id, patient = obs.get("id"), _patient_of(obs)
        holders = [obs]
        if BP_PANEL in _loinc_codes(obs.get("code")):
            holders += [c for c in obs.get("component") or [] if isinstance(c, dict)]
        for holder in holders:
            found = _quantity(holder)
            if found is None:
                continue
            for code in _loinc_codes(holder.get("code")):
                if code in known:
                    yield Reading(obs_id if isinstance(obs_id, str) else None, patient, code,
                                  found[0], found[1])
                    break


@runtime_checkable
class AlertSink(Protocol):
    """Where alert CloudEvents go."""

    async def send(self, alert: Event) -> None:
        """Deliver one alert; raise to have the source event retried."""


class MemoryAlertSink:
    """Keeps alerts in memory (tests, demos)."""

    def __init__(self) -> None:
        self.alerts: list[Event] = []

    async def send(self, alert: Event) -> None:
        """Remember ``alert``."""
        self.alerts.append(alert)


class AlertSinkError(ConnectorError):
    """The alert sink did not take an alert; the source event should be retried."""

    retriable = True


class HttpAlertSink:
    """POSTs each alert in CloudEvents binary mode to one URL."""

    def __init__(self, url: str, *, client: httpx.AsyncClient | None = None,
                 timeout_s: float = 10.0) -> None:
        self._url = url
        self._client = client or httpx.AsyncClient(timeout=timeout_s)

    async def send(self, alert: Event) -> None:
        """POST ``alert``; raises :class:`AlertSinkError` unless the sink answers 2xx."""
        headers = {**alert.http_headers(), "idempotency-key": alert.id}
        try:
            response = await self._client.post(self._url, content=alert.data, headers=headers)
        except httpx.TransportError as exc:
            raise AlertSinkError(f"alert sink unreachable: {type(exc).__name__}") from exc
        if not 200 <= response.status_code <= 299:
            raise AlertSinkError(f"alert sink answered HTTP {response.status_code}")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


class VitalSignAlerts:
    """Processor: emits an alert for each vital sign outside its threshold."""

    def __init__(self, sink: AlertSink, thresholds: Mapping[str, Threshold] | None = None,
                 *, source: str = "urn:hl7gw:alerts") -> None:
        self._sink = sink
        self._thresholds = dict(thresholds) if thresholds is not None else thresholds_from()
        self._source = source

    async def process(self, event: Event, bundle: dict[str, Any]) -> None:
        """Check every reading in ``bundle``; send the alerts in Bundle order."""
        for reading in readings(bundle, self._thresholds):
            crossed = self._thresholds[reading.code].crossed(reading.value)
            if crossed is not None:
                await self._sink.send(self.alert(event, reading, *crossed))

    def alert(self, event: Event, reading: Reading, side: str, bound: float) -> Event:
        """The alert CloudEvent for one reading outside its threshold."""
        subject = reading.patient or event.subject
        data = {"code": reading.code, "system": LOINC, "value": reading.value,
                "unit": reading.unit, "threshold": {"side": side, "value": bound},
                "observation": reading.observation_id, "sourceevent": event.id}
        name = f"{event.id}|{reading.observation_id}|{reading.code}"
        return Event.new(source=self._source, type=ALERT_TYPE, subject=subject,
                         key=event.key, data=orjson.dumps(data),
                         content_type="application/json",
                         id=str(uuid.uuid5(_ALERT_NAMESPACE, name)))

    async def aclose(self) -> None:
        """Close the sink if it holds a client."""
        close = getattr(self._sink, "aclose", None)
        if close is not None:
            await close()
