"""A specimen's containers: every SAC of its group, not only the one right after the SPM.

OML^O35 sends a specimen (SPM) and then, per container, a SAC followed by that container's
orders (ORC + OBR); OUL^R23 sends SPM, its OBX, then SAC + orders per container. The engine
reads one segment's fields at a time (``children`` are the segments right after it), so
``containers`` gathers the SACs from the SPM up to the next SPM itself and maps each with
the usual datatype functions, read as if the SAC were the segment being mapped.
"""

from __future__ import annotations

from typing import Any, Final

from mappers.datatypes.clinical import quantity
from mappers.datatypes.coded import codeable_concept
from mappers.datatypes.identity import entity_identifier
from mappers.engine.context import Context
from mappers.engine.refs import FieldRef, RuleView
from mappers.hl7v2 import Repetition, Segment
from mappers.registry import datatype

_UNITS: Final = (FieldRef("SAC", 24, None, None, "SAC-24"),)  # volume units (CWE)
_PLAIN: Final = RuleView(None, None, None, {}, ())
_WITH_UNITS: Final = RuleView(None, "quantity", None, {}, _UNITS)
_SPECIMEN_END: Final = frozenset({"SPM", "PID", "MSH"})


def _container(sac: Segment, ctx: Context) -> dict[str, Any]:
    """One SAC as a Specimen.container: id (SAC-3), volumes (SAC-21/22/23 in SAC-24) and
    additive (SAC-27)."""
    def first(n: int) -> Repetition | None:
        reps = sac.values(n)
        return reps[0] if reps else None

    out: dict[str, Any] = {}
    ident = first(3)
    if ident is not None and (found := entity_identifier(ident, ctx, _PLAIN)):
        out["identifier"] = [found]
    capacity = first(21)
    if capacity is not None and (found := quantity(capacity, ctx, _WITH_UNITS)):
        out["capacity"] = found
    for n in (22, 23):  # available, else initial specimen volume
        amount = first(n)
        if amount is not None and (found := quantity(amount, ctx, _WITH_UNITS)):
            out["specimenQuantity"] = found
            break
    additive = first(27)
    if additive is not None and (found := codeable_concept(additive, ctx, _PLAIN)):
        out["additiveCodeableConcept"] = found
    return out


@datatype("containers", whole_field=True)
def containers(rep: Repetition, ctx: Context, rule: RuleView) -> list[dict[str, Any]] | None:
    """Every SAC after the SPM being mapped, up to the next SPM, as Specimen.container."""
    spm, location = ctx.segment, ctx.location
    out = []
    try:
        for seg in ctx.message.segments[spm.position:]:  # positions are 1-based
            if seg.id in _SPECIMEN_END:
                break
            if seg.id != "SAC":
                continue
            ctx.consumed.add(seg.position)  # mapped here: not an ignored repeated SAC
            ctx.segment = seg  # SAC-24 (the units) is read from this SAC
            ctx.location = "SAC"
            found = _container(seg, ctx)
            if found:
                out.append(found)
    finally:
        ctx.segment, ctx.location = spm, location
    return out or None
