"""Errors raised by the gateway package, rooted at :class:`hl7gw.errors.Hl7gwError`."""

from __future__ import annotations

from hl7gw.errors import Hl7gwError, MessageError


class GatewayError(Hl7gwError):
    """Root of the errors raised on purpose by the gateway package."""


class MissingTool(GatewayError):
    """A program the gateway needs (``java``, ``mvn``) is not installed or not on PATH."""


class BrokerUnavailable(GatewayError):
    """The local Kafka broker could not be fetched, formatted, started or reached."""


class SpoolError(GatewayError):
    """The spool could not commit or read; intake answers with a NAK and keeps nothing half-done."""


class ConfigError(GatewayError):
    """A configuration file is invalid; the message names the file, the line and the field."""


class SpoolFull(GatewayError):
    """The spool reached its configured bound; intake stops ACKing until it drains."""


class SpoolAtCapacity(SpoolFull, MessageError):
    """The spool holds ``spool.max_pending`` unpublished rows: refuse (AE/CE) until it drains.

    A refusal the sender can act on (resend later) beats an ACK for a message we cannot keep.
    """

    ack_code = "AE"
    err_code = "207"
