"""The project's one exception tree.

Every error the project raises on purpose derives from :class:`Hl7gwError`. The tree's root
and the errors shared by more than one package live here, in the leaf package ``hl7gw``
that imports nothing from ``gateway``, ``mappers`` or ``connectors``: so the cloud function
(``connectors.cloud``) can raise and catch them without importing the mapper (see
docs/errors.md). ``mappers.errors`` re-exports these same classes; ``connectors.errors`` and
``gateway.errors`` extend them.

Errors about a received message carry their ACK policy as data: ``ack_code`` (``"AR"`` or
``"AE"``) and ``err_code`` (HL7 table 0357), so the gateway builds the NAK with one pure
function instead of a chain of ``except`` clauses.
"""

from __future__ import annotations


class Hl7gwError(Exception):
    """Root of every error raised on purpose by hl7gw."""


class MessageError(Hl7gwError):
    """A received HL7 v2 message cannot be accepted as it is.

    ``ack_code`` is ``"AR"`` when the message cannot be read or is of a kind we do not take
    (the envelope is wrong), ``"AE"`` when it was read but its content is wrong.
    """

    ack_code = "AE"
    err_code = "207"  # HL7 0357: application internal error

    def __init__(self, text: str, *, segment: str | None = None, sequence: int | None = None,
                 field: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.segment = segment
        self.sequence = sequence  # 1-based position of the segment in the message
        self.field = field

    @property
    def location(self) -> str:
        """Where the problem is, as ``PID-3`` or ``PID`` or ``""``."""
        if self.segment and self.field:
            return f"{self.segment}-{self.field}"
        return self.segment or ""


class UnreadableMessage(MessageError):
    """The bytes are not an HL7 v2 message at all (no MSH, bad encoding characters, empty)."""

    ack_code = "AR"
    err_code = "100"  # segment sequence error


class SegmentSequenceError(MessageError):
    """A required segment is missing or segments are out of order."""

    ack_code = "AE"
    err_code = "100"


class RequiredFieldMissing(MessageError):
    """A field the message cannot be processed without is empty."""

    ack_code = "AE"
    err_code = "101"


class DataTypeError(MessageError):
    """A field's value does not fit its HL7 data type (a date that is not a date, ...)."""

    ack_code = "AE"
    err_code = "102"


class UnsupportedMessageType(MessageError):
    """MSH-9 names a message type this listener does not accept."""

    ack_code = "AR"
    err_code = "200"


class UnsupportedEvent(MessageError):
    """MSH-9 names a trigger event this listener does not accept."""

    ack_code = "AR"
    err_code = "201"


class UnsupportedProcessingId(MessageError):
    """MSH-11 names a processing id this listener does not accept."""

    ack_code = "AR"
    err_code = "202"


class UnsupportedVersion(MessageError):
    """MSH-12 names an HL7 version this listener does not accept."""

    ack_code = "AR"
    err_code = "203"


class SpecError(Hl7gwError):
    """A mapping spec or profile file is invalid; the message names file, line and field."""


class ProfileError(SpecError):
    """A per-sender profile is invalid: ``file:line: field: what is wrong``, one per line."""


class InvalidOutput(Hl7gwError):
    """A Bundle the mapping produced failed FHIR validation: a mapping bug, not the sender's.

    The message lists element paths and reasons only, never the offending values (PHI).
    """
