"""Code tables read backwards: FHIR code -> v2 code, from the inbound tables.

The inbound tables (``mappers/specs/codes/*.yaml``) map a v2 code to a FHIR code, Coding
or small object. Their inverse is built once: each FHIR value (a code, a Coding's
``system|code`` and ``code``, each value of an object such as ``{use: home}``) points back
to the **first** v2 code that maps to it (``registered`` <- ``O`` in table 0123, not ``I``
or ``S``). ``mappers/specs/outbound/codes.yaml`` adds or overrides entries for values no
inbound table gives back (``amended`` -> ``C`` in 0123), and a destination profile's
``codes`` override both.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hl7gw.yamlfile import load_file
from mappers.engine.models import CodeTable
from mappers.errors import SpecError
from mappers.profiles.models import Text

INBOUND_CODES = Path(__file__).resolve().parent.parent / "specs" / "codes"
OUTBOUND_CODES = Path(__file__).resolve().parent.parent / "specs" / "outbound" / "codes.yaml"


class _OutboundCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    tables: dict[Text, dict[Text, Text]] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReverseTable:
    """One table backwards: FHIR value -> v2 code; ``source_system`` names the v2 codes."""

    name: str
    source_system: str | None
    codes: dict[str, str]

    def lookup(self, value: Any) -> str | None:
        """The v2 code for a FHIR code, boolean or Coding (``system|code`` first)."""
        if isinstance(value, dict):
            system, code = value.get("system"), value.get("code")
            if code is None:
                return None
            if system is not None and system == self.source_system:
                return str(code)
            return self.codes.get(f"{system}|{code}") or self.codes.get(str(code))
        return self.codes.get(_key(value))


def _key(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _keys(entry: Any) -> list[str]:
    if entry is None:
        return []
    if isinstance(entry, dict):
        if "code" in entry:
            keys = [str(entry["code"])]
            if "system" in entry:
                keys.insert(0, f"{entry['system']}|{entry['code']}")
            return keys
        return [_key(v) for v in entry.values()]
    return [_key(entry)]


def reverse(table: CodeTable) -> ReverseTable:
    """The inverse of one inbound table: first v2 code wins for each FHIR value."""
    codes: dict[str, str] = {}
    # the table's own spelling of its codes (Booked), not the case-folded lookup keys
    for v2_code, entry in table.model_copy(update={"ignore_case": False}).resolved().items():
        for key in _keys(entry):
            codes.setdefault(key, v2_code)
    return ReverseTable(table.table, table.source_system, codes)


@cache
def reverse_tables() -> dict[str, ReverseTable]:
    """Every inbound table reversed, with the outbound additions over them (read once)."""
    out: dict[str, ReverseTable] = {}
    for path in sorted(INBOUND_CODES.glob("*.yaml")):
        doc = load_file(path, SpecError, what="code table")
        try:
            table = CodeTable.model_validate(doc.data)
        except ValidationError as exc:
            raise SpecError(doc.describe(exc.errors(include_url=False))) from None
        out[table.table] = reverse(table)
    doc = load_file(OUTBOUND_CODES, SpecError, what="code table")
    try:
        extra = _OutboundCodes.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(doc.describe(exc.errors(include_url=False))) from None
    for name, entries in extra.tables.items():
        base = out.get(name)
        out[name] = ReverseTable(name, base.source_system if base else None,
                                 {**(base.codes if base else {}), **entries})
    return out


def with_overrides(tables: dict[str, ReverseTable], codes: dict[str, dict[str, str]]
                   ) -> dict[str, ReverseTable]:
    """``tables`` with a profile's ``codes`` (FHIR code -> v2 code) put over them."""
    if not codes:
        return tables
    out = dict(tables)
    for name, entries in codes.items():
        base = out.get(name)
        out[name] = ReverseTable(name, base.source_system if base else None,
                                 {**(base.codes if base else {}), **entries})
    return out
