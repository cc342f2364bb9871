"""Clinical values: OBX-5 by its value type (NM, SN, ED...), organizations (XON), links."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

from mappers.datatypes.identity import choose_identifier, component_authority
from mappers.datatypes.vocabulary import ucum_code
from mappers.engine.context import Context
from mappers.engine.paths import compact
from mappers.engine.refs import RuleView
from mappers.hl7v2 import Repetition
from mappers.registry import datatype

_DECIMAL: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_COMPARATORS: Final = {"<": "<", ">": ">", "<=": "<=", ">=": ">="}
_UCUM: Final = "http://unitsofmeasure.org"
_UCUM_NAMES: Final = frozenset({"UCUM", "ANSI+"})  # OBX-6.3 names under which units are UCUM
# ED.2 type of data (HL7 table 0191) -> the MIME top-level type
_MIME: Final = {"AP": "application", "APPLICATION": "application", "TEXT": "text", "TX": "text",
         "IM": "image", "IMAGE": "image", "AU": "audio", "AUDIO": "audio",
         "VIDEO": "video", "MULTIPART": "multipart", "NS": "application", "SI": "application",
         "SD": "application", "FT": "text"}
_BASE64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _decimal(text: str, ctx: Context) -> float | int | None:
    text = text.strip()
    if not text:
        return None
    digits = text[1:] if text[0] in "+-" else text
    plain = digits.isascii() and digits.replace(".", "", 1).isdigit()  # _DECIMAL, cheaper
    if not plain and not _DECIMAL.fullmatch(text):
        ctx.issue("invalid-value", "not a number; left out")
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _unit(ctx: Context, rule: RuleView) -> dict[str, Any]:
    """Units from the field ``extra`` names (OBX-6, a CWE) as Quantity unit/system/code."""
    if not rule.extra:
        return {}
    units = ctx.value(rule.extra[0])
    c = units.decoded(6)
    if not c[0].isprintable() or "  " in c[0]:  # a FHIR code: no runs of blanks or breaks
        c[0] = " ".join(c[0].split())
    if not (c[0] or c[1]):
        return {}
    out: dict[str, Any] = {"unit": c[1] or c[0]}
    # UCUM only when it is UCUM (``mg/dL``) or a known spelling of it (``MG/DL``, ``mmHg``):
    # a server rejects a Quantity whose UCUM code is not; else the unit stays bare text.
    code = ucum_code(c[0]) if c[0] and (c[2].upper() in _UCUM_NAMES or not c[2]) else None
    if code is None and c[3] and c[5].upper() == "UCUM":  # the alternate unit (CWE.4-6)
        code = ucum_code(c[3])
    if code is not None:
        out["system"] = _UCUM
        out["code"] = code
    return out


@datatype("quantity")
def quantity(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """NM as a Quantity, with the unit of the CWE named by ``extra`` (OBX-6)."""
    value = _decimal(rep.component(1), ctx)
    if value is None:
        return None
    return {"value": value, **_unit(ctx, rule)}


def _sn(rep: Repetition) -> tuple[str, str, str, str]:
    comparator, first, sep, second = rep.decoded(4)
    return comparator, first, sep, second


@datatype("SN")
def structured_numeric(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """SN with no second number as a Quantity (``<``, ``>``, ``<=``, ``>=`` kept)."""
    comparator, first, sep, second = _sn(rep)
    if sep or second:
        return None  # a range or ratio: SN_range / SN_ratio write it
    value = _decimal(first, ctx)
    if value is None:
        return None
    out: dict[str, Any] = {"value": value}
    if comparator and comparator not in {"=", "<>"}:
        if comparator not in _COMPARATORS:
            ctx.issue("invalid-value", "SN comparator not one of < > <= >= =; left out")
            return None
        out["comparator"] = _COMPARATORS[comparator]
    return {**out, **_unit(ctx, rule)}


@datatype("SN_range")
def sn_range(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """SN ``^10^-^20`` as a Range."""
    _, first, sep, second = _sn(rep)
    if sep != "-":
        return None
    unit = _unit(ctx, rule)
    low, high = _decimal(first, ctx), _decimal(second, ctx)
    return compact({"low": {"value": low, **unit} if low is not None else None,
                    "high": {"value": high, **unit} if high is not None else None})


@datatype("SN_ratio")
def sn_ratio(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """SN ``^1^:^128`` (or ``/``) as a Ratio."""
    _, first, sep, second = _sn(rep)
    if sep not in {":", "/"}:
        return None
    num, den = _decimal(first, ctx), _decimal(second, ctx)
    return compact({"numerator": {"value": num} if num is not None else None,
                    "denominator": {"value": den} if den is not None else None})


@datatype("text")
def text(rep: Repetition, ctx: Context, rule: RuleView) -> str | None:
    """TX/FT free text: the whole value decoded (``\\.br\\`` as a line break), trimmed."""
    return rep.text.strip() or None


@datatype("concept_text")
def concept_text(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """A free-text value (ST) as a CodeableConcept with only ``text``."""
    value = rep.text.strip()
    return {"text": value} if value else None


@datatype("ED")
def attachment(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """ED (source^type^subtype^encoding^data) as an Attachment with base64 data."""
    parts = rep.components
    if len(parts) < 5:
        ctx.issue("invalid-value", "ED value without its five components; left out")
        return None
    kind, subtype, encoding = (p.strip() for p in rep.decoded(4)[1:4])
    raw = "".join(parts[4:]).strip()  # data: not unescaped, base64 holds no separators
    if encoding.upper() in {"BASE64", ""}:
        data = "".join(raw.split())
        if not data or len(data) % 4 or not _BASE64.fullmatch(data):
            ctx.issue("invalid-value", "ED data is not valid base64; left out")
            return None
        try:
            base64.b64decode(data, validate=True)
        except binascii.Error:
            ctx.issue("invalid-value", "ED data is not valid base64; left out")
            return None
    elif encoding.upper() == "A":
        data = base64.b64encode(rep.encoding.unescape(raw).encode()).decode()
    else:
        ctx.issue("invalid-value", "ED encoding not Base64 or A; left out")
        return None
    top = _MIME.get(kind.upper(), kind.lower())
    content_type = f"{top}/{subtype.lower()}" if top and subtype else None
    return compact({"contentType": content_type, "data": data})


@datatype("XON", pure=True)
def organization_name(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """XON as a display Reference, with its id (XON.10, else XON.3) as an identifier."""
    c = rep.decoded(10)
    value = c[9] or c[2]
    system = component_authority(rep, 6)
    ident = ({"value": value, "system": system} if system else {"value": value}) if value \
        else None
    return compact({"display": c[0], "identifier": ident})


@datatype("patient_link", whole_field=True)
def patient_link(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """A CX list (MRG-1, PID-3) as a reference to the Patient those identifiers key.

    Uses the same choice and key as the Patient id (``ids.identifier_key``), so the link
    points at the resource another message about that patient writes.
    """
    from mappers.ids import resource_id

    assert rule.field is not None
    chosen = choose_identifier(ctx.values(rule.field))
    if chosen is None:
        return None
    system = component_authority(chosen, 4) or f"facility:{ctx.header.sending_facility}"
    return {"reference": "Patient/" + resource_id(
        "Patient", f"{system}|{chosen.component(1).strip()}")}


@datatype("other_patient_link", whole_field=True)
def other_patient_link(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """The same CX list (PID-3) of the message's other patient, as a reference to it.

    ADT^A24 (link patient information) carries two PIDs for one person: each Patient
    links to the other, keyed as ``patient_link`` keys it. None with a single PID.
    """
    from mappers.ids import resource_id

    assert rule.field is not None
    current = ctx.segment
    for seg in ctx.message.get_all_view(rule.field.segment):
        if seg.position == current.position:
            continue
        chosen = choose_identifier(seg.values(rule.field.field))
        if chosen is None:
            continue
        system = component_authority(chosen, 4) or f"facility:{ctx.header.sending_facility}"
        return {"reference": "Patient/" + resource_id(
            "Patient", f"{system}|{chosen.component(1).strip()}")}
    return None


@datatype("text_lines", whole_field=True)
def text_lines(rep: Repetition, ctx: Context, rule: RuleView) -> str | None:
    """Every repetition of a TX/FT/ST field as one text, a line each (TX repeats by line)."""
    assert rule.field is not None
    lines = [r.text.rstrip() for r in ctx.values(rule.field)]
    return "\n".join(lines).strip() or None


@datatype("text_attachment", whole_field=True)
def text_attachment(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """Free text over several repetitions (and OBX segments) as a text/plain Attachment."""
    body = text_lines(rep, ctx, rule)
    if body is None:
        return None
    return {"contentType": "text/plain; charset=utf-8",
            "data": base64.b64encode(body.encode()).decode()}


@datatype("title_attachment", pure=True)
def title_attachment(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """A document's title as an Attachment holding only that title.

    A notification without the document (MDM^T01, T03...) still makes a DocumentReference,
    which R4 requires to have content: the title says which document, not what it says.
    """
    value = rep.text.strip()
    return {"title": value} if value else None


@datatype("concept_display", pure=True)
def concept_display(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """A CWE naming an organization (a vaccine maker: MVX code) as a display Reference."""
    code, display = rep.decoded(2)
    return {"display": display or code} if display or code else None


@datatype("location_name", pure=True)
def location_name(rep: Repetition, ctx: Context, rule: RuleView) -> str | None:
    """PL as a place's name: its description (PL.9), else point of care, room, bed..."""
    c = rep.decoded(9)
    return c[8] or ", ".join(p for p in (c[0], c[1], c[2], c[6], c[7], c[3]) if p) or None
