"""What ``convert`` returns: the Bundle plus everything the mapping could not carry over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mappers.hl7v2 import Header

Severity = Literal["error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem met while mapping one message; ``text`` never contains message values (PHI)."""

    severity: Severity
    code: str  # "unknown-code", "invalid-value", "ignored-repetition", ...
    location: str  # "PID-8", "PV1", "" for the whole message
    text: str


@dataclass(frozen=True, slots=True)
class ConversionResult:
    """A FHIR R4 transaction Bundle made from one HL7 v2 message, with what was left out."""

    bundle: dict[str, Any]
    message_type: str  # "ADT^A01"
    control_id: str  # MSH-10
    patient_key: str | None  # the Patient resource id: stable, no PHI (the Kafka key)
    issues: list[Issue]
    unmapped: list[str]  # "PV1-44", "ZPD-1": valued fields no spec read (never values)
    header: Header
