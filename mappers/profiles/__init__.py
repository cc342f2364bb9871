"""Per-sender profiles: one sender's quirks as data, layered over the built-in specs.

A profile is one YAML file in a profiles folder. It is chosen by the message's MSH-3
(sending application), MSH-4 (sending facility) and MSH-12 (version); the most specific
match wins (each named key counts one; ``*`` or absent matches anything), and two profiles
with the same match are refused as ambiguous. A profile may set:

- ``timezone`` and ``charset`` for messages that carry none (the gateway applies charset);
- ``identifier_systems``: assigning authority (HD.1 namespace or HD.2 universal id) ->
  the FHIR identifier system used for CX and XCN identifiers;
- ``patient_key``: which identifier keys the Patient id (a field other than PID-3, and/or
  the repetition of a given authority and CX.5 type);
- ``codes``: code table entries overridden or added, per table (``"0078": {HIGHISH: H}``);
- ``local_codes``: a local coding (CWE.3 system as sent, code) -> a standard Coding, put
  first in the CodeableConcept, the sender's own coding kept after it;
- ``fields``: extra field mappings, typically Z-segments: a field through a datatype to an
  extension (``extension: URL``) or to an element (``path:``) of a chosen resource spec.
  For a resource built once per segment (Observation per OBX), a Z-segment right after
  that segment (after its own child segments, such as NTE) is the one read;
- ``ignore_segments``: segments neither mapped nor reported as unmapped.

Nothing is forked: a profile's changes are applied to copies of the built-in spec models
and compiled into its own spec set when the profile loads, so a conversion with a profile
costs what one without does. Every mistake is a ``ProfileError`` naming the file, the line
and the field.
"""

from __future__ import annotations

from mappers.profiles.loading import Profile
from mappers.profiles.models import EXTENSION_VALUE, ProfileModel
from mappers.profiles.selection import EMPTY_PROFILES, ProfileSet, msh_sender

__all__ = ["EMPTY_PROFILES", "EXTENSION_VALUE", "Profile", "ProfileModel", "ProfileSet",
           "msh_sender"]
