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


@dataclass(init=False, eq=True, slots=True)
class ConversionResult:
    """A FHIR R4 transaction Bundle made from one HL7 v2 message, with what was left out.

    Read-only by convention; the ``__init__`` is written out so mypyc compiles it (one is
    made per message).
    """

    bundle: dict[str, Any]
    message_type: str  # "ADT^A01"
    control_id: str  # MSH-10
    patient_key: str | None  # the Patient resource id: stable, no PHI (the Kafka key)
    issues: list[Issue]
    unmapped: list[str]  # "PV1-44", "ZPD-1": valued fields no spec read (never values)
    header: Header

    def __init__(self, bundle: dict[str, Any], message_type: str, control_id: str,
                 patient_key: str | None, issues: list[Issue], unmapped: list[str],
                 header: Header) -> None:
        self.bundle = bundle
        self.message_type = message_type
        self.control_id = control_id
        self.patient_key = patient_key
        self.issues = issues
        self.unmapped = unmapped
        self.header = header
