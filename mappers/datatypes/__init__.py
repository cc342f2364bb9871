"""Datatype functions: one repetition of an HL7 v2 value -> one FHIR element as plain data.

Upper-case names are HL7 datatypes mapped to their natural FHIR type (``CX`` -> Identifier);
lower-case names are conversions named after their target (``code``, ``endpoint``).
Each function returns None when there is nothing to write and records issues in the
context, never values from the message.
"""

from __future__ import annotations

from mappers.datatypes import (
    clinical,
    coded,
    contact,
    containers,
    identity,
    linkage,  # after identity: it imports mappers.ids
    simple,
)

__all__ = ["clinical", "coded", "contact", "containers", "identity", "linkage", "simple"]
