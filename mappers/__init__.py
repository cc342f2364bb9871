"""HL7 v2 -> FHIR R4 conversion: pure functions over YAML mapping specs, no I/O.

``parse`` tokenizes a message; ``convert`` turns it into a FHIR R4 transaction Bundle.
The hot modules run compiled by mypyc when built (see ``mappers._accel``).
"""

from __future__ import annotations

from mappers._accel import guard

guard()  # before any compiled module loads: stale or unwanted builds fall back to source

from mappers.conversion import (  # noqa: E402
    check,
    convert,
    patient_key,
    supported_message_types,
)
from mappers.errors import (  # noqa: E402
    DataTypeError,
    Hl7gwError,
    InvalidOutput,
    MessageError,
    RequiredFieldMissing,
    SegmentSequenceError,
    SpecError,
    UnreadableMessage,
    UnsupportedEvent,
    UnsupportedMessageType,
    UnsupportedProcessingId,
    UnsupportedVersion,
)
from mappers.explain import explain  # noqa: E402
from mappers.hl7v2 import Header, Message, parse  # noqa: E402
from mappers.result import ConversionResult, Issue  # noqa: E402

__all__ = [
    "ConversionResult",
    "DataTypeError",
    "Header",
    "Hl7gwError",
    "InvalidOutput",
    "Issue",
    "Message",
    "MessageError",
    "RequiredFieldMissing",
    "SegmentSequenceError",
    "SpecError",
    "UnreadableMessage",
    "UnsupportedEvent",
    "UnsupportedMessageType",
    "UnsupportedProcessingId",
    "UnsupportedVersion",
    "check",
    "convert",
    "explain",
    "parse",
    "patient_key",
    "supported_message_types",
]
