"""Named conditions a spec rule can require (``when: {not_valued: PID-29}``)."""

from __future__ import annotations

from mappers.engine.context import Context
from mappers.engine.refs import FieldRef
from mappers.registry import predicate


@predicate("valued")
def valued(ctx: Context, ref: FieldRef) -> bool:
    """True when the field (or component) holds a value (not empty, not ``""``)."""
    return bool(ctx.value(ref)) if ref.component else bool(ctx.values(ref))


@predicate("not_valued")
def not_valued(ctx: Context, ref: FieldRef) -> bool:
    """True when the field (or component) is empty or the explicit null."""
    return not valued(ctx, ref)


def _value_type(ctx: Context, ref: FieldRef) -> str:
    # nine OBX-5 rules ask this of every OBX: remembered for the segment being mapped
    found = ctx.scratch.get(ref.text)
    if found is None:
        reps = ctx.values(ref)
        found = ctx.scratch[ref.text] = reps[0].component(1).strip().upper() if reps else ""
    return found


@predicate("numeric_type")
def numeric_type(ctx: Context, ref: FieldRef) -> bool:
    """The value type field (OBX-2) says NM."""
    return _value_type(ctx, ref) == "NM"


@predicate("text_type")
def text_type(ctx: Context, ref: FieldRef) -> bool:
    """The value type field says ST, TX or FT (or is empty: text is the safe reading)."""
    return _value_type(ctx, ref) in {"ST", "TX", "FT", ""}


@predicate("coded_type")
def coded_type(ctx: Context, ref: FieldRef) -> bool:
    """The value type field says CE, CWE, CNE or CF."""
    return _value_type(ctx, ref) in {"CE", "CWE", "CNE", "CF"}


@predicate("structured_numeric_type")
def structured_numeric_type(ctx: Context, ref: FieldRef) -> bool:
    """The value type field says SN."""
    return _value_type(ctx, ref) == "SN"


@predicate("time_type")
def time_type(ctx: Context, ref: FieldRef) -> bool:
    """The value type field says DT, TS or DTM."""
    return _value_type(ctx, ref) in {"DT", "TS", "DTM"}


@predicate("attachment_type")
def attachment_type(ctx: Context, ref: FieldRef) -> bool:
    """The value type field says ED."""
    return _value_type(ctx, ref) == "ED"


@predicate("other_type")
def other_type(ctx: Context, ref: FieldRef) -> bool:
    """The value type field names a type no OBX-5 rule maps (reported as an issue)."""
    known = {"NM", "ST", "TX", "FT", "", "CE", "CWE", "CNE", "CF", "SN", "DT", "TS", "DTM",
             "ED"}
    if _value_type(ctx, ref) in known:
        return False
    ctx.issue("unsupported-value-type", "OBX-5 of this value type is not mapped",
              location=ref.text)
    return False


@predicate("not_attachment_type")
def not_attachment_type(ctx: Context, ref: FieldRef) -> bool:
    """The value type field does not say ED (R4 Observation has no valueAttachment)."""
    return _value_type(ctx, ref) != "ED"


@predicate("cancel_event")
def cancel_event(ctx: Context, ref: FieldRef) -> bool:
    """The trigger event (MSH-9.2) cancels something: S15 (appointment), S16, A11, A12."""
    return ctx.value(ref).component(1).strip() in {"S15", "S16", "A11", "A12", "A13"}


def _has_role(ctx: Context, ref: FieldRef, role: str) -> bool:
    return any(rep.component(1).strip().upper() == role for rep in ctx.values(ref))


@predicate("referring_provider")
def referring_provider(ctx: Context, ref: FieldRef) -> bool:
    """A provider role field (PRD-1, HL7 0286) says RP: the provider who refers."""
    return _has_role(ctx, ref, "RP")


@predicate("referred_to_provider")
def referred_to_provider(ctx: Context, ref: FieldRef) -> bool:
    """A provider role field (PRD-1, HL7 0286) says RT: the provider referred to."""
    return _has_role(ctx, ref, "RT")


@predicate("deleted_action")
def deleted_action(ctx: Context, ref: FieldRef) -> bool:
    """An action code field (RXA-21, HL7 0206) says D: the record is deleted."""
    return ctx.value(ref).component(1).strip().upper() == "D"


@predicate("kept_action")
def kept_action(ctx: Context, ref: FieldRef) -> bool:
    """An action code field (AIL-2, HL7 0206) does not say D: the record stays."""
    return not deleted_action(ctx, ref)


# ADT events by what they do to the patient record (HL7 table 0003); see docs/adt-events.md.
_MERGE_EVENTS = frozenset({"A18", "A30", "A34", "A39", "A40", "A46", "A47"})


@predicate("merge_event")
def merge_event(ctx: Context, ref: FieldRef) -> bool:
    """The trigger event merges a patient record into another or changes its identifier
    (A30, A34, A39, A40, A46, A47): the prior identifiers (MRG-1) name a replaced Patient.
    Not the moves (A43-A45) nor the visit and account merges, whose MRG names no patient."""
    return ctx.value(ref).component(1).strip() in _MERGE_EVENTS


@predicate("link_event")
def link_event(ctx: Context, ref: FieldRef) -> bool:
    """The trigger event links two patient records (A24): each PID names the same person."""
    return ctx.value(ref).component(1).strip() == "A24"
