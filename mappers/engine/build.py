"""Running a resource spec's rules over a segment, and finding what no spec read."""

from __future__ import annotations

import re
from itertools import compress
from typing import Any

from mappers.engine.context import Context
from mappers.engine.loader import CompiledMessage
from mappers.engine.models import FieldRef
from mappers.engine.paths import freeze, put, taken, thaw
from mappers.engine.steps import FIELD, REFERENCE, CompiledResource, Step
from mappers.hl7v2 import Message, Repetition

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")


def build_resource(compiled: CompiledResource, rid: str, ctx: Context) -> dict[str, Any] | None:
    """The resource a spec makes from ``ctx.segment``, or None when it would be invalid."""
    # The hot loop of the whole mapper (~70 steps a message): kept in one function on purpose,
    # as a call per step costs more than the step's own bookkeeping.
    spec = compiled.spec
    segment = ctx.segment
    body: dict[str, Any] = {}
    if ctx.trace is not None:
        ctx.trace.append(("#", f"{spec.resource}/{rid}", spec.key, None))
    for step in compiled.steps:
        if step.fallback and taken(body, step.path):
            continue  # an earlier rule already gave this single value
        if step.conditions and not all(pred(ctx, ref) for pred, ref in step.conditions):
            continue
        if step.kind == FIELD:
            ref = step.ref
            reps = segment.values(ref.field) if step.own else ctx.values(ref)
            if not reps:
                continue
            if ref.component is not None:
                reps = _narrow(reps, ref)
            ctx.location = ref.text
            if step.whole:
                reps = reps[:1]
            elif len(reps) > 1 and not step.appends:
                ctx.issue("ignored-repetition", f"{len(reps) - 1} more repetition(s) not "
                          f"mapped: {step.path.text} holds one value", severity="information")
                reps = reps[:1]
            for rep in reps:
                value = _convert(step, rep, ctx) if step.memo is not None and \
                    ctx.trace is None else step.fn(rep, ctx, step.rule)  # explain: no memo
                if value or value is False or value == 0:  # no None, "", [] or {}
                    put(body, step.path, value, step.siblings)
                    if ctx.trace is not None:
                        ctx.trace.append((step.path.text, ref.text, step.rule.type or "",
                                          value))
        elif step.kind == REFERENCE:
            for target in ctx.refer(step.reference or "", step.appends):
                put(body, step.path, {"reference": f"{step.reference_type}/{target}"},
                    step.siblings)
                if ctx.trace is not None:
                    ctx.trace.append((step.path.text, "", "reference",
                                      f"{step.reference_type}/{target}"))
        else:
            put(body, step.path, thaw(step.value), step.siblings)
            if ctx.trace is not None:
                ctx.trace.append((step.path.text, "", "constant", None))
    resource = {"resourceType": spec.resource, "id": rid, **body}
    missing = [p for p in spec.required_elements if not _has(resource, p)]
    if missing:
        ctx.issue("missing-element", f"{spec.resource} not produced: FHIR requires "
                  f"{', '.join(missing)}, which the message does not give",
                  severity="error", location=spec.segment)
        return None
    return resource


_MEMO_MAX = 1024


def _convert(step: Step, rep: Repetition, ctx: Context) -> Any:
    """A pure datatype's value for ``rep``, remembered per step (issues are replayed)."""
    memo = step.memo
    assert memo is not None
    key = rep.cache_key
    hit = memo.get(key)
    if hit is not None:
        value, issues = hit
        if issues:
            ctx.issues.extend(issues)
        return thaw(value)
    before = len(ctx.issues)
    value = step.fn(rep, ctx, step.rule)
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[key] = (freeze(value), tuple(ctx.issues[before:]))
    return value


def _narrow(reps: list[Repetition], ref: FieldRef) -> list[Repetition]:
    """The component (or subcomponent) ``ref`` names, of each repetition that has it."""
    assert ref.component is not None
    narrowed = [r.part(ref.component) for r in reps]
    if ref.subcomponent is not None:
        narrowed = [r.part(ref.subcomponent) for r in narrowed]
    return [r for r in narrowed if r]


def _has(resource: dict[str, Any], dotted: str) -> bool:
    node: Any = resource
    for name in dotted.split("."):
        if isinstance(node, list):
            node = node[0] if node else None
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
    return True


def find_unmapped(message: Message, compiled: CompiledMessage, ctx: Context) -> list[str]:
    """Valued fields no spec read, as ``PV1-44`` (no values); notes ignored segments."""
    seen: dict[str, int] = {}
    warned: set[str] = set()
    out: dict[str, None] = {}
    for seg in message.segments:
        sid = seg.id
        if not _SEGMENT_ID.fullmatch(sid):
            ctx.issue("malformed-segment", f"segment {seg.position} has no valid segment id; "
                      "skipped", location="")
            continue
        count = seen[sid] = seen.get(sid, 0) + 1
        mapped = sid in compiled.segments and (count == 1 or seg.position in ctx.consumed)
        if not mapped and count > 1 and sid in compiled.segments and sid not in warned:
            warned.add(sid)
            ctx.issue("ignored-segment", f"a repeated {sid} is not mapped; its fields are "
                      "listed as unmapped", location=sid)
        fields = seg.raw_fields()
        valued = set(compress(range(1, len(fields)), fields[1:]))  # C-speed: ~100 fields
        if mapped:
            valued -= compiled.reads_by_segment.get(sid, frozenset())
        for n in sorted(valued):
            out[f"{sid}-{n}"] = None
    return list(out)
