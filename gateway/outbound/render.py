"""A result as each destination receives it: FHIR -> HL7 v2 with the destination's choices.

The conversion itself is :mod:`mappers.outbound` (specs as data); this module adds what
belongs to a destination: its HL7 version, its profile (loaded once, at start), the MSH
sender and receiver names, and which message types it takes. MSH-10 is derived from the
result event's id, so the same result always carries the same control id, resends and
replays included.
"""

from __future__ import annotations

from typing import Any

import orjson

from connectors.events import Event
from connectors.results import CAUSATION_ID
from gateway.errors import ConfigError
from gateway.outbound.settings import DestinationSettings
from gateway.spool.outbound import OutboundItem
from mappers.errors import Hl7gwError
from mappers.outbound import (
    OutboundProfile,
    Rendered,
    control_id_for,
    load_outbound_profile,
    to_v2,
)


class Renderer:
    """Renders results for one destination; build with :meth:`for_destination`."""

    def __init__(self, settings: DestinationSettings, profile: OutboundProfile | None) -> None:
        self.settings = settings
        self.profile = profile

    @classmethod
    def for_destination(cls, settings: DestinationSettings) -> Renderer:
        """Load the destination's profile; a bad file raises ConfigError naming it."""
        profile = None
        if settings.profile is not None:
            try:
                profile = load_outbound_profile(settings.profile)
            except Hl7gwError as exc:
                raise ConfigError(f"outbound destination {settings.name!r}: {exc}") from exc
        return cls(settings, profile)

    def takes(self, message_types: list[str]) -> bool:
        """True when the destination receives one of ``message_types``."""
        return any(self.settings.takes(t) for t in message_types)

    def render(self, event: Event, resource: dict[str, Any],
               message_types: list[str]) -> OutboundItem:
        """The queue item for this destination: the message, or the reason it has none."""
        s = self.settings
        control_id = control_id_for(event.id)
        wanted = next((t for t in message_types if s.takes(t)), message_types[0])
        cause = event.extensions.get(CAUSATION_ID)
        try:
            rendered = self._to_v2(resource, control_id, wanted)
        except Hl7gwError as exc:
            return OutboundItem(destination=s.name, event_id=event.id, causation_id=cause,
                                message_type=wanted, control_id=control_id,
                                patient_key=None, resource=event.data, message=b"",
                                error=str(exc))
        return OutboundItem(destination=s.name, event_id=event.id, causation_id=cause,
                            message_type=rendered.message_type,
                            control_id=rendered.control_id, patient_key=rendered.patient_key,
                            resource=event.data, message=rendered.message)

    def rerender(self, event_id: str, resource: bytes, message_type: str) -> bytes:
        """The message for a stored result again (replay after a profile fix), with the
        same MSH-10; raises the mapper's error when it still cannot be rendered."""
        return self._to_v2(orjson.loads(resource), control_id_for(event_id),
                           message_type).message

    def _to_v2(self, resource: dict[str, Any], control_id: str, message_type: str
               ) -> Rendered:
        s = self.settings
        return to_v2(resource, control_id=control_id, version=s.version, profile=self.profile,
                     sending_application=s.sending_application,
                     sending_facility=s.sending_facility,
                     receiving_application=s.receiving_application,
                     receiving_facility=s.receiving_facility, message_type=message_type)
