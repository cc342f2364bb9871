"""HL7 v2 -> FHIR R4 conversion: pure functions over YAML mapping specs, no I/O.

``parse`` tokenizes a message; ``convert`` turns it into a FHIR R4 transaction Bundle.
"""

from __future__ import annotations

from mappers.conversion import check, convert, supported_message_types
from mappers.errors import (
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
from mappers.explain import explain
from mappers.hl7v2 import Header, Message, parse
from mappers.result import ConversionResult, Issue

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
    "supported_message_types",
]
