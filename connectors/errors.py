"""Errors raised by the connectors, with their retry policy as data.

Every connector error derives from :class:`ConnectorError`, itself a
:class:`hl7gw.errors.Hl7gwError`. Callers decide whether to try again by reading
``error.retriable`` instead of matching exception classes: a retry loop asks the error.
Foreign errors (aiokafka, httpx) are translated into these at one boundary each
(``connectors.kafka.errors`` and ``connectors.bridge.delivery``).
"""

from __future__ import annotations

from hl7gw.errors import Hl7gwError


class ConnectorError(Hl7gwError):
    """Root of the errors raised by ``connectors``."""

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retriable is not None:
            self.retriable = retriable


class SettingsFileError(ConnectorError):
    """A connector's settings file (the alert thresholds) is invalid: ``file:line: what``."""


class InvalidEvent(ConnectorError):
    """Bytes or headers that are not a CloudEvent this gateway accepts."""

    retriable = False


class EventRejected(ConnectorError):
    """A processor refused an event for good; sending it again will not help."""

    retriable = False


class PublishError(ConnectorError):
    """Kafka did not acknowledge a record; ``cause`` names the client error class."""

    def __init__(self, message: str, *, retriable: bool, cause: str | None = None) -> None:
        super().__init__(message, retriable=retriable)
        self.cause = cause


class DeliveryError(ConnectorError):
    """A function target did not accept an event after ``attempts`` tries."""

    retriable = True

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0,
                 retriable: bool | None = None) -> None:
        super().__init__(message, retriable=retriable)
        self.status = status
        self.attempts = attempts


class PermanentDeliveryError(DeliveryError):
    """A function target refused an event in a way that retrying cannot fix."""

    retriable = False


class DeadLetterError(ConnectorError):
    """An event could not be delivered and could not be dead-lettered either."""

    retriable = False
