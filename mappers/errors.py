"""The mapper's errors: the project's exception tree, re-exported from :mod:`hl7gw.errors`.

The classes are defined in the leaf package ``hl7gw`` (so ``connectors`` can use them
without importing the mapper); these names are the very same class objects, so
``except mappers.errors.MessageError`` and ``except hl7gw.errors.MessageError`` catch alike.
"""

from __future__ import annotations

from hl7gw.errors import (
    DataTypeError,
    Hl7gwError,
    InvalidOutput,
    MessageError,
    ProfileError,
    RequiredFieldMissing,
    SegmentSequenceError,
    SpecError,
    UnreadableMessage,
    UnsupportedEvent,
    UnsupportedMessageType,
    UnsupportedProcessingId,
    UnsupportedVersion,
)


class OutboundError(Hl7gwError):
    """A FHIR resource cannot be rendered as an HL7 v2 message (``mappers.outbound``).

    The message names what is missing or unsupported (an element, a reference, a version),
    never a value from the resource (PHI).
    """


__all__ = [
    "DataTypeError",
    "Hl7gwError",
    "InvalidOutput",
    "MessageError",
    "OutboundError",
    "ProfileError",
    "RequiredFieldMissing",
    "SegmentSequenceError",
    "SpecError",
    "UnreadableMessage",
    "UnsupportedEvent",
    "UnsupportedMessageType",
    "UnsupportedProcessingId",
    "UnsupportedVersion",
]
