"""Named datatype writers: one FHIR value -> one HL7 v2 field value (repetitions).

A writer takes a FHIR value (a string, number, Identifier, HumanName, CodeableConcept...),
the ``Writing`` context (tables, the destination profile's choices, the version) and the
rule's args, and returns the field as data: repetitions of components of subcomponents,
unescaped (``mappers.outbound.encoding`` escapes). Nothing here knows which segment it
writes: the specs say that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import unquote

from mappers.outbound.encoding import FieldValue
from mappers.outbound.tables import ReverseTable
from mappers.outbound.times import to_dtm

HL7_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v2-"
UCUM: Final = "http://unitsofmeasure.org"
V2_0203: Final = HL7_SYSTEM + "0203"
NAME_URN: Final = "urn:id:"
LOCAL_SYSTEM_NAME: Final = "L"  # table 0396: a local code system (a system with no v2 name)


@dataclass(frozen=True)
class Writing:
    """What writers need besides the value: tables, the destination's choices, the version."""

    version: tuple[int, ...]
    tables: dict[str, ReverseTable]
    system_names: dict[str, str]  # FHIR system URI -> v2 coding system name
    authorities: dict[str, str] = field(default_factory=dict)  # system -> CX-4 namespace
    # (system, code) of a standard coding -> (local code, local system name)
    local_codes: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    timezone: str | None = None
    resolve: Callable[[dict[str, Any]], dict[str, Any] | None] = lambda ref: None

    def code(self, table: str | None, value: Any) -> str | None:
        """``value`` (a code or Coding) as the table's v2 code; None when it has none."""
        if table is None:
            return None
        found = self.tables.get(table)
        return found.lookup(value) if found is not None else None

    def system_name(self, system: str | None) -> str:
        """The v2 name of a FHIR code system (``LN``, ``HL70078``); ``L`` when it has none."""
        if not system:
            return ""
        if system.startswith(HL7_SYSTEM) and system[len(HL7_SYSTEM):].isdigit():
            return "HL7" + system[len(HL7_SYSTEM):]
        return self.system_names.get(system, LOCAL_SYSTEM_NAME)


Writer = Callable[[Any, Writing, dict[str, Any], str | None], FieldValue | None]


@dataclass(frozen=True, slots=True)
class WriterInfo:
    """A registered writer: its function, whether line breaks are ``\\.br\\``, its args."""

    fn: Writer
    formatted: bool
    args: dict[str, type]


WRITERS: dict[str, WriterInfo] = {}


def writer(*names: str, formatted: bool = False, args: dict[str, type] | None = None
           ) -> Callable[[Writer], Writer]:
    """Register a writer under ``names`` (the ``type`` of spec rules)."""
    def register(fn: Writer) -> Writer:
        for name in names:
            WRITERS[name] = WriterInfo(fn, formatted, args or {})
        return fn
    return register


def one(*components: str | list[str]) -> FieldValue:
    """One repetition from its components (a list is a component's subcomponents)."""
    return [[c if isinstance(c, list) else [c] for c in components]]


def text_of(value: Any) -> str | None:
    """Plain text of a value: a string or number as is, a concept's text or display."""
    if value is None or isinstance(value, dict | list):
        if isinstance(value, dict):
            for key in ("text", "display", "value", "valueString", "code"):
                if isinstance(value.get(key), str | int | float):
                    return str(value[key])
            codings = value.get("coding")
            if isinstance(codings, list) and codings:
                return text_of(codings[0])
        return None
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


@writer("ST", formatted=True)
def write_st(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
             ) -> FieldValue | None:
    """Text; a line break is written ``\\.br\\``."""
    text = text_of(value)
    return one(text) if text else None


@writer("FT", formatted=True)
def write_ft(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
             ) -> FieldValue | None:
    """Formatted text: as ST (line breaks ``\\.br\\``)."""
    return write_st(value, ctx, args, table)


@writer("TX", formatted=True)
def write_tx(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
             ) -> FieldValue | None:
    """Text data: one repetition per line, as TX repeats by line."""
    text = text_of(value)
    if not text:
        return None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [[[line]] for line in lines]


@writer("ID", "IS", "code")
def write_code(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
               ) -> FieldValue | None:
    """A code; with a table, the table's v2 code for it (nothing when the table has none)."""
    if isinstance(value, dict) and "coding" in value:
        for coding in value.get("coding") or []:
            found = write_code(coding, ctx, args, table)
            if found:
                return found
        return None
    if table is not None:
        code = ctx.code(table, value)
        return one(code) if code else None
    text = value.get("code") if isinstance(value, dict) else text_of(value)
    return one(str(text)) if text else None


def number(value: Any) -> str | None:
    """A JSON number as NM text: no exponent, the digits given kept."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        return None
    return format(dec, "f") if dec.is_finite() else None


@writer("NM")
def write_nm(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
             ) -> FieldValue | None:
    """A number (a Quantity's value when given a Quantity)."""
    if isinstance(value, dict):
        value = value.get("value")
    text = number(value)
    return one(text) if text is not None else None


@writer("DTM", "TS", "DT", args={"as": str})
def write_dtm(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
              ) -> FieldValue | None:
    """A FHIR date/dateTime/instant (or a Period's start) as DTM; ``as: date`` keeps the
    date only."""
    if isinstance(value, dict):
        value = value.get("start")
    if not isinstance(value, str) or not value:
        return None
    return one(to_dtm(value, timezone=ctx.timezone, date_only=args.get("as") == "date"))


def authority(system: str | None, assigner: str, ctx: Writing) -> list[str]:
    """An identifier system as an HD (namespace, universal id, type): the destination's
    authority name when its profile names the system, else ``urn:oid:`` as ISO, ``urn:uuid:``
    as UUID, ``urn:id:NAME`` as the namespace NAME, another URI as URI."""
    if not system:
        return [assigner] if assigner else []
    if system in ctx.authorities:
        return [ctx.authorities[system]]
    if system.startswith("urn:oid:"):
        return [assigner, system[8:], "ISO"]
    if system.startswith("urn:uuid:"):
        return [assigner, system[9:], "UUID"]
    if system.startswith(NAME_URN):
        return [unquote(system[len(NAME_URN):])]
    return [assigner, system, "URI"]


def _type_code(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    for coding in codings:
        if coding.get("system") == V2_0203 and coding.get("code"):
            return str(coding["code"])
    for coding in codings:
        if coding.get("code"):
            return str(coding["code"])
    return str(concept.get("text") or "")


def _date(value: Any, ctx: Writing) -> str:
    return to_dtm(value, timezone=ctx.timezone, date_only=True) if isinstance(value, str) \
        else ""


@writer("CX")
def write_cx(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
             ) -> FieldValue | None:
    """An Identifier as CX: value, assigning authority (CX-4), type (CX-5), period."""
    if not isinstance(value, dict) or not value.get("value"):
        return None
    assigner = text_of((value.get("assigner") or {}).get("display")) or ""
    period = value.get("period") or {}
    return one(str(value["value"]), "", "", authority(value.get("system"), assigner, ctx),
               _type_code(value.get("type")), "", _date(period.get("start"), ctx),
               _date(period.get("end"), ctx))


@writer("EI")
def write_ei(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
             ) -> FieldValue | None:
    """An Identifier as EI: value, then the authority's namespace, universal id and type."""
    if not isinstance(value, dict) or not value.get("value"):
        return None
    assigner = text_of((value.get("assigner") or {}).get("display")) or ""
    hd = authority(value.get("system"), assigner, ctx)
    return one(str(value["value"]), *hd)


@writer("XPN")
def write_xpn(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
              ) -> FieldValue | None:
    """A HumanName as XPN: family, given, further given names, suffix, prefix, use."""
    if not isinstance(value, dict):
        return None
    given = [str(g) for g in value.get("given") or []]
    prefix = [str(p) for p in value.get("prefix") or []]
    suffix = [str(s) for s in value.get("suffix") or []]
    family = str(value.get("family") or "")
    if not (family or given or prefix or suffix):
        text = value.get("text")
        return one(str(text)) if text else None
    use = ctx.code("0200", value["use"]) if value.get("use") else None
    return one(family, given[0] if given else "", " ".join(given[1:]),
               suffix[0] if suffix else "", " ".join(prefix), "", use or "")


@writer("XAD")
def write_xad(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
              ) -> FieldValue | None:
    """An Address as XAD: lines, city, state, postal code, country, type, district."""
    if not isinstance(value, dict):
        return None
    lines = [str(x) for x in value.get("line") or []]
    kind = ctx.code("0190", value["use"]) if value.get("use") else None
    if kind is None and value.get("type"):
        kind = ctx.code("0190", value["type"])
    parts = [lines[0] if lines else "", " ".join(lines[1:]), value.get("city") or "",
             value.get("state") or "", value.get("postalCode") or "",
             value.get("country") or "", kind or "", "", value.get("district") or ""]
    if not any(parts[:6]) and not parts[8]:
        text = value.get("text")
        return one(str(text)) if text else None
    return one(*(str(p) for p in parts))


@writer("XTN")
def write_xtn(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
              ) -> FieldValue | None:
    """A ContactPoint as XTN: number (or e-mail in XTN-4), use (0201), equipment (0202)."""
    if not isinstance(value, dict) or not value.get("value"):
        return None
    system, use = value.get("system") or "phone", value.get("use")
    equipment = ctx.code("0202", "mobile" if use == "mobile" else system) or ""
    use_code = ctx.code("0201", use) if use and use != "mobile" else None
    if system == "email":
        return one("", use_code or "NET", equipment or "Internet", str(value["value"]))
    return one(str(value["value"]), use_code or "", equipment)


def _codings(value: Any) -> tuple[list[dict[str, Any]], str]:
    if isinstance(value, str):
        return [{"code": value}], ""
    if not isinstance(value, dict):
        return [], ""
    if "coding" in value or "text" in value:
        codings = [c for c in value.get("coding") or [] if isinstance(c, dict) and c.get("code")]
        return codings, str(value.get("text") or "")
    if value.get("code"):
        return [value], ""
    ident = value.get("identifier")  # a Reference (a manufacturer): its identifier, display
    if isinstance(ident, dict) and ident.get("value"):
        return [{"code": ident["value"], "system": ident.get("system"),
                 "display": value.get("display")}], ""
    return [], str(value.get("display") or "")


def _triplet(coding: dict[str, Any], ctx: Writing) -> list[str]:
    return [str(coding["code"]), str(coding.get("display") or ""),
            ctx.system_name(coding.get("system"))]


@writer("CWE", "CE", "CNE")
def write_cwe(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
              ) -> FieldValue | None:
    """A CodeableConcept (or Coding, or code) as CWE: first and alternate coding, text.

    With a table, the coding in the table's own v2 system goes first, else the v2 code the
    table maps the FHIR coding back to. A destination's local code for a standard coding
    goes first, the standard one after it.
    """
    codings, text = _codings(value)
    first: list[str] | None = None
    rest = list(codings)
    if table is not None and codings:
        source = ctx.tables[table].source_system if table in ctx.tables else None
        for coding in codings:
            code = ctx.code(table, coding)
            if code is not None:
                name = ctx.system_name(source) if source else ""
                display = str(coding.get("display") or "") \
                    if coding.get("system") == source else ""
                first = [code, display, name]
                # the table's own FHIR coding for that code comes back on the way in
                rest = [c for c in codings if c is not coding and ctx.code(table, c) != code] \
                    if coding.get("system") == source else [coding]
                break
    if first is None and ctx.local_codes:
        for coding in codings:
            local = ctx.local_codes.get((str(coding.get("system")), str(coding["code"])))
            if local is not None:
                first, rest = [local[0], str(coding.get("display") or ""), local[1]], [coding]
                break
    if first is None and rest:
        first, rest = _triplet(rest[0], ctx), rest[1:]
    if first is None:
        return one("", text) if text else None
    alternate = _triplet(rest[0], ctx) if rest else ["", "", ""]
    original = text if text and text != first[1] and ctx.version >= (2, 5) else ""
    return one(*first, *alternate, "", "", original)


@writer("units")
def write_units(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
                ) -> FieldValue | None:
    """A Quantity's unit as CWE: ``code^unit^UCUM`` for UCUM, else the unit as sent."""
    if not isinstance(value, dict):
        return None
    unit, code = value.get("unit"), value.get("code")
    if code and value.get("system") == UCUM:
        return one(str(code), str(unit or code), "UCUM")
    return one(str(unit or code)) if unit or code else None


@writer("range")
def write_range(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
                ) -> FieldValue | None:
    """An Observation.referenceRange as OBX-7 text: its text, else ``low-high``, ``>low``,
    ``<high``."""
    if not isinstance(value, dict):
        return None
    if value.get("text"):
        return one(str(value["text"]))
    low = number((value.get("low") or {}).get("value"))
    high = number((value.get("high") or {}).get("value"))
    if low is not None and high is not None:
        return one(f"{low}-{high}")
    if low is not None:
        return one(f">{low}")
    return one(f"<{high}") if high is not None else None

