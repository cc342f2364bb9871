"""Links between orders, results and doses that HL7 v2 makes by identifier, not by position.

A microbiology report sends the organism in one order (an OBX) and its susceptibilities in a
child order whose OBR-26 (parent result: the parent OBX's OBX-3 and OBX-4) and OBR-29
(parent: the parent order's placer and filler numbers) name that OBX. An adverse reaction
to a vaccine is an OBX (LOINC 31044-1) after the RXA it reacts to. The engine's references
follow segment positions; these functions find the segment an identifier names and give
the id the engine gives the resource built from it, as a FHIR Reference.

The ids are those of ``mappers.ids``: a result's key is the order's number plus OBX-3.1,
OBX-3.3 and OBX-4 (``resources/observation.yaml``), an order's the first valued of OBR-2,
ORC-2, OBR-3, ORC-3 (``resources/servicerequest.yaml``). ``_RESULT_SCOPE`` and
``_ORDER_KEY`` repeat those specs' id fields; the unit tests check that every reference
made here lands on an entry of the Bundle.

The ``order_only`` predicate also lives here: an ORC with no order detail segment (OBR,
RXO...) after it is an order of its own (a cancel, a hold), mapped to a ServiceRequest.
"""

from __future__ import annotations

from typing import Any, Final

from mappers import ids  # the module, not its names: mappers.ids imports this package
from mappers.datatypes.simple import timestamp
from mappers.engine.context import Context
from mappers.engine.refs import FieldRef, RuleView
from mappers.hl7v2 import NULL, Message, Repetition, Segment
from mappers.registry import datatype, predicate

# observation.yaml's id: scope [OBR-3, OBR-2, ORC-3, ORC-2, PV1-19], OBX-3.1, OBX-3.3, OBX-4
_RESULT_SCOPE: Final = (("OBR", 3), ("OBR", 2), ("ORC", 3), ("ORC", 2), ("PV1", 19))
# servicerequest.yaml's id: key order, field OBR-2, extra [ORC-2, OBR-3, ORC-3]
_ORDER_KEY: Final = (("OBR", 2), ("ORC", 2), ("OBR", 3), ("ORC", 3))
# segments that end an order group when read forward from its ORC or OBR
_GROUP_END: Final = frozenset({"MSH", "PID", "ORC", "OBR", "SPM", "SAC"})
# segments that give an ORC its order detail: with none of these, the ORC is the order
_ORDER_DETAIL: Final = frozenset({"OBR", "RXO", "RXE", "RXD", "RXG", "RXA", "ODS", "ODT", "RQD",
                                  "RQ1", "BPO"})
_REACTION: Final = "31044-1"  # LOINC Reaction (CDC immunization guide: adverse reaction OBX)
_AS_DATETIME: Final = RuleView(None, "TS", None, {}, ())


def _first(seg: Segment, n: int) -> str:
    """The raw text of field ``n``'s first repetition, trimmed; "" for empty or null."""
    fields = seg.raw_fields()
    text = fields[n] if n < len(fields) else ""
    if not text or text == NULL:
        return ""
    return text.split(seg.encoding.repetition, 1)[0].strip()


def _component(seg: Segment, n: int, c: int) -> str:
    """The raw text of component ``c`` of field ``n``'s first repetition, trimmed."""
    parts = _first(seg, n).split(seg.encoding.component)
    return parts[c - 1].strip() if c <= len(parts) else ""


def _related(ctx: Context, segment: Segment, segment_id: str) -> Segment | None:
    """The ``segment_id`` segment that belongs with ``segment``, as the engine reads it when
    ``segment`` is the one being mapped (``Context.related``: groups by position)."""
    current = ctx.segment
    ctx.segment = segment
    try:
        return ctx.related(segment_id)
    finally:
        ctx.segment = current


def _group(message: Message, start: Segment) -> list[Segment]:
    """The segments after ``start`` up to the next one that begins another order group."""
    out = []
    for seg in message.segments[start.position:]:  # positions are 1-based
        if seg.id in _GROUP_END:
            break
        out.append(seg)
    return out


def result_reference(ctx: Context, obx: Segment) -> dict[str, Any] | None:
    """The Reference to the Observation built from ``obx`` (its id key, recomputed)."""
    main = _component(obx, 3, 1)
    if not main:
        return None
    scope = ""
    for sid, n in _RESULT_SCOPE:
        seg = _related(ctx, obx, sid)
        raw = _first(seg, n) if seg is not None else ""
        if raw and raw != NULL:
            scope = f"{sid}-{n}:{raw}"
            break
    if not scope:
        h = ctx.header
        scope = ctx.ids.get("Patient") or \
            f"{h.sending_application}|{h.sending_facility}|{h.control_id}"
    key = "|".join([scope, main, _component(obx, 3, 3), _first(obx, 4)])
    return {"reference": f"Observation/{ids.resource_id('Observation', key)}"}


def _order_key(ctx: Context, obr: Segment) -> str | None:
    """The key ``resources/servicerequest.yaml`` gives the ServiceRequest of ``obr``."""
    for sid, n in _ORDER_KEY:
        seg = obr if sid == "OBR" else _related(ctx, obr, sid)
        if seg is None:
            continue
        entity = _component(seg, n, 1)
        if entity:
            rep = Repetition(_first(seg, n), seg.encoding)
            return f"{n}|{rep.component(2).strip()}|{rep.component(1).strip()}"
    return None


def parent_order(message: Message, obr: Segment) -> Segment | None:
    """The earlier OBR that ``obr``'s OBR-29 (EIP: placer & filler numbers) names.

    The filler number is matched first (children often share the parent's placer number).
    Without OBR-29, a child (OBR-26 valued) belongs to the nearest earlier parentless OBR.
    """
    eip = Repetition(_first(obr, 29), obr.encoding)
    placer, filler = eip.part(1).component(1).strip(), eip.part(2).component(1).strip()
    earlier = [o for o in message.get_all_view("OBR") if o.position < obr.position]
    if filler:
        for cand in reversed(earlier):
            if _component(cand, 3, 1) == filler:
                return cand
    if placer:
        for cand in reversed(earlier):
            if _component(cand, 2, 1) == placer:
                return cand
    if not placer and not filler and _first(obr, 26):
        for cand in reversed(earlier):
            if not _first(cand, 26):
                return cand
    return None


def parent_result(message: Message, obr: Segment) -> Segment | None:
    """The OBX that ``obr``'s OBR-26 (PRL: OBX-3 ^ OBX-4 ^ text) names, in its parent order."""
    prl = Repetition(_first(obr, 26), obr.encoding)
    code, sub_id = prl.part(1).component(1).strip(), prl.component(2).strip()
    parent = parent_order(message, obr) if code else None
    if parent is None:
        return None
    for seg in _group(message, parent):
        if seg.id == "OBX" and _component(seg, 3, 1) == code and \
                (not sub_id or _first(seg, 4) == sub_id):
            return seg
    return None


@datatype("parent_order")
def parent_order_reference(rep: Repetition, ctx: Context, rule: RuleView
                           ) -> dict[str, Any] | None:
    """OBR-29 as the Reference to the parent ServiceRequest: to its entry when the parent
    order is in the message, else by the parent's placer (or filler) number."""
    obr = ctx.related("OBR")
    if obr is None:
        return None
    parent = parent_order(ctx.message, obr)
    key = _order_key(ctx, parent) if parent is not None else None
    if key is not None:
        return {"reference": f"ServiceRequest/{ids.resource_id('ServiceRequest', key)}"}
    for part, kind in ((1, "PLAC"), (2, "FILL")):
        value = rep.part(part).component(1).strip()
        if value:
            return {"type": "ServiceRequest", "identifier": {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                     "code": kind}]},
                "value": value}}
    return None


@datatype("parent_result")
def parent_result_reference(rep: Repetition, ctx: Context, rule: RuleView
                            ) -> dict[str, Any] | None:
    """OBR-26 (in a result's order) as the Reference to the parent result's Observation."""
    obr = ctx.related("OBR")
    parent = parent_result(ctx.message, obr) if obr is not None else None
    return result_reference(ctx, parent) if parent is not None else None


@datatype("child_results", whole_field=True)
def child_results(rep: Repetition, ctx: Context, rule: RuleView) -> list[dict[str, Any]] | None:
    """The Observations of the child orders whose OBR-26/OBR-29 name this OBX (hasMember)."""
    message, obx = ctx.message, ctx.segment
    orders = message.get_all_view("OBR")
    if not orders or orders[-1].position < obx.position:
        return None  # no order after this result: nothing can name it (every OBX of most ORU)
    children = [o for o in orders if o.position > obx.position and _first(o, 26)]
    if not children:  # no later OBR names a parent result
        return None
    out = []
    for obr in children:
        parent = parent_result(message, obr)
        if parent is None or parent.position != obx.position:
            continue
        for seg in _group(message, obr):
            if seg.id == "OBX" and _component(seg, 2, 1).upper() != "ED":
                found = result_reference(ctx, seg)
                if found is not None:
                    out.append(found)
    return out or None


@datatype("reactions")
def reactions(rep: Repetition, ctx: Context, rule: RuleView) -> list[dict[str, Any]] | None:
    """The reaction OBX (OBX-3 31044-1) after this RXA, as Immunization.reaction entries:
    the Observation (OBX-5 holds what happened) and its date (OBX-14)."""
    out = []
    for seg in ctx.message.segments[ctx.segment.position:]:
        if seg.id in {"RXA", "ORC", "PID", "MSH"}:
            break
        if seg.id != "OBX" or _component(seg, 3, 1) != _REACTION:
            continue
        entry: dict[str, Any] = {}
        when = seg.values(14)
        date = timestamp(when[0], ctx, _AS_DATETIME) if when else None
        if date:
            entry["date"] = date
        found = result_reference(ctx, seg)
        if found is not None:
            entry["detail"] = found
        if entry:
            out.append(entry)
    return out or None


@predicate("order_only")
def order_only(ctx: Context, ref: FieldRef) -> bool:
    """The ORC being mapped has no order detail (OBR, RXO, RXE...) in its group: the ORC
    itself is the order (a cancel, hold or status change sent without its detail)."""
    for seg in ctx.message.segments[ctx.segment.position:]:
        if seg.id in _ORDER_DETAIL:
            return False
        if seg.id in {"ORC", "PID", "MSH"}:
            break
    return True
