"""FHIR R4 -> HL7 v2: render a resource or Bundle as one message, driven by YAML specs.

The reverse of ``mappers.convert``, for results going back to the hospital: the specs in
``mappers/specs/outbound/`` say which element goes to which field through which named
writer (``mappers.outbound.writers``); a destination's quirks are an ``OutboundProfile``.
Pure functions, no I/O but reading the specs once.
"""

from __future__ import annotations

from mappers.errors import OutboundError
from mappers.outbound.loading import OutboundProfile, load_outbound_profile
from mappers.outbound.render import Rendered, control_id_for, message_types_for, to_v2

__all__ = [
    "OutboundError",
    "OutboundProfile",
    "Rendered",
    "control_id_for",
    "load_outbound_profile",
    "message_types_for",
    "to_v2",
]
