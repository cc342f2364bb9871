"""Field references and the parts of a spec rule the hot path reads, as compiled classes.

``FieldRef`` is parsed from the specs' text (``PID-3``); ``RuleView`` and ``IdView`` are the
few attributes of a pydantic ``Rule`` / ``IdSpec`` that datatype functions and id keys read
per message. Reading them from these plain classes, rather than from the pydantic models,
keeps attribute access a C field load when the mapper runs compiled (``mappers._accel``).
``TableFlags`` names what the hot path reads of a ``CodeTable``.

The spec models (``mappers.engine.models``, pydantic, used while the specs load) import
this module, never the other way round: the compiled runtime (``context``, ``build``, the
datatypes) depends on these views only, which keeps the import graph free of cycles.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

_REF: Final = re.compile(r"([A-Z][A-Z0-9]{2})-([1-9]\d{0,2})(?:\.([1-9]\d?)(?:\.([1-9]\d?))?)?")


@dataclass(frozen=True)
class FieldRef:
    """A place in a message: ``PID-3``, ``MSH-9.2`` or ``PV1-3.4.1``."""

    segment: str
    field: int
    component: int | None
    subcomponent: int | None
    text: str

    @classmethod
    def parse(cls, text: Any) -> FieldRef:
        """Read ``SEG-n[.c[.s]]``; ``ValueError`` otherwise."""
        if isinstance(text, FieldRef):
            return text
        m = _REF.fullmatch(text) if isinstance(text, str) else None
        if m is None:
            raise ValueError(f"{text!r} is not a field reference like PID-3 or MSH-9.2")
        seg, fld, comp, sub = m.groups()
        return cls(seg, int(fld), int(comp) if comp else None, int(sub) if sub else None, text)


class RuleView:
    """What a datatype function may read of its rule: source field, table, args, extras."""

    def __init__(self, field: FieldRef | None, type: str | None, table: str | None,
                 args: dict[str, str | int | bool], extra: tuple[FieldRef, ...]) -> None:
        self.field = field
        self.type = type
        self.table = table
        self.args = args
        self.extra = extra


class IdView:
    """A resource spec's id settings with its key functions looked up (see ``mappers.ids``)."""

    def __init__(self, key: Callable[..., str | None], fallback: Callable[..., str | None] | None,
                 field: FieldRef | None, extra: tuple[FieldRef, ...],
                 scope: tuple[FieldRef, ...], required: bool, shared: bool) -> None:
        self.key = key
        self.fallback = fallback
        self.field = field
        self.extra = extra
        self.scope = scope
        self.required = required
        self.shared = shared


class Overlay:
    """What a per-sender profile changes while a message converts (``mappers.profiles``).

    The rest of a profile (code tables, extra field rules, the patient key's field) is
    compiled into the profile's own spec set; these are the parts datatype functions and
    id keys consult per value: assigning authority -> identifier system, local codings ->
    standard ones, and which PID-3 repetition keys the Patient.
    """

    def __init__(self, systems: dict[str, str],
                 local_codes: dict[tuple[str, str], dict[str, str]],
                 key_authority: str | None, key_type: str | None) -> None:
        self.systems = systems  # HD.1 namespace or HD.2 universal id -> system URI
        self.local_codes = local_codes  # (CWE.3 as sent or "*", code) -> Coding
        self.key_authority = key_authority  # CX.4 namespace or universal id
        self.key_type = key_type  # CX.5 identifier type code


class TableFlags(Protocol):
    """What the hot path reads of a code table besides its entries (``CodeTable`` has these).

    The entries themselves come resolved, as plain dicts (``SpecSet.resolved_tables``).
    """

    @property
    def source_system(self) -> str | None:
        """The v2 code system URI, for the original coding."""

    @property
    def user_defined(self) -> bool:
        """Site codes: an unknown code is not an issue."""

    @property
    def ignore_case(self) -> bool:
        """``Booked`` and ``BOOKED`` are the same code."""
