"""Running a resource spec's rules over a segment, and finding what no spec read."""

from __future__ import annotations

import re
from typing import Any, Final

from mappers.engine.context import Context
from mappers.engine.loader import CompiledMessage
from mappers.engine.paths import freeze, put, taken, thaw
from mappers.engine.refs import FieldRef
from mappers.engine.steps import FIELD, REFERENCE, CompiledResource, Step
from mappers.hl7v2 import Message, Repetition

_SEGMENT_ID: Final = re.compile(r"[A-Z][A-Z0-9]{2}")
_NONE: Final[frozenset[int]] = frozenset()


def build_resource(compiled: CompiledResource, rid: str, ctx: Context) -> dict[str, Any] | None:
    """The resource a spec makes from ``ctx.segment``, or None when it would be invalid."""
    # The hot loop of the whole mapper (~70 steps a message): kept in one function on purpose,
    # as a call per step costs more than the step's own bookkeeping. Memo hits, one-step
    # paths and single conditions are inlined for the same reason.
    spec = compiled
    segment = ctx.segment
    raw_fields = segment.raw_fields()
    trace = ctx.trace
    body: dict[str, Any] = {}
    if trace is not None:
        trace.append(("#", f"{spec.resource}/{rid}", spec.key, None))
    for step in compiled.steps:
        path = step.path
        if step.fallback:
            leaf = path.leaf
            if body.get(leaf) is not None if leaf else taken(body, path):
                continue  # an earlier rule already gave this single value
        conditions = step.conditions
        if conditions:
            held = True
            for pred, cond_ref in conditions:
                if not pred(ctx, cond_ref):
                    held = False
                    break
            if not held:
                continue
        kind = step.kind
        if kind == FIELD:
            ref = step.ref
            if step.own:
                n = ref.field
                if n >= len(raw_fields) or not raw_fields[n]:
                    continue  # most rules meet an empty field: no objects made for it
                reps = segment.values(n)
            else:
                reps = ctx.values(ref)
            if not reps:
                continue
            if ref.component is not None:
                reps = _narrow(reps, ref)
            ctx.location = ref.text
            if step.whole:
                reps = reps[:1]
            elif len(reps) > 1 and not step.appends:
                ctx.issue("ignored-repetition", f"{len(reps) - 1} more repetition(s) not "
                          f"mapped: {path.text} holds one value", severity="information")
                reps = reps[:1]
            memo = step.memo if trace is None else None  # explain: no memo
            for rep in reps:
                if memo is not None:
                    hit = memo.get(rep.cache_key)
                    if hit is not None:
                        value, issues = hit
                        if issues:
                            ctx.issues.extend(issues)
                        value = thaw(value)
                    else:
                        value = _remember(memo, rep, step, ctx)
                else:
                    value = step.fn(rep, ctx, step.rule)
                if value or value is False or value == 0:  # no None, "", [] or {}
                    direct = step.direct
                    if direct:
                        if body.get(direct) is None:
                            body[direct] = value
                    elif step.direct_list:
                        body.setdefault(step.direct_list, []).append(value)
                    else:
                        put(body, path, value, step.siblings)
                    if trace is not None:
                        trace.append((path.text, ref.text, step.rule.type or "", value))
        elif kind == REFERENCE:
            for target in ctx.refer(step.reference or "", step.appends):
                value = {"reference": target}  # "Type/id", as the target recorded it
                if step.direct_list:
                    body.setdefault(step.direct_list, []).append(value)
                elif step.direct:
                    if body.get(step.direct) is None:
                        body[step.direct] = value
                else:
                    put(body, path, value, step.siblings)
                if trace is not None:
                    trace.append((path.text, "", "reference", target))
        else:
            value = thaw(step.value)  # a fresh copy: outputs never share a container
            put(body, path, value, step.siblings)
            if trace is not None:
                trace.append((path.text, "", "constant", None))
    resource = {"resourceType": spec.resource, "id": rid, **body}
    required = spec.required_elements
    if required and not all(_has(resource, p) for p in required):
        missing = [p for p in required if not _has(resource, p)]
        ctx.issue("missing-element", f"{spec.resource} not produced: FHIR requires "
                  f"{', '.join(missing)}, which the message does not give",
                  severity="error", location=spec.segment)
        return None
    return resource


_MEMO_MAX: Final = 1024


def _remember(memo: dict[tuple[str, str, str], Any], rep: Repetition, step: Step,
              ctx: Context) -> Any:
    """A pure datatype's value for ``rep``, remembered per step (issues are replayed)."""
    before = len(ctx.issues)
    value = step.fn(rep, ctx, step.rule)
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[rep.cache_key] = (freeze(value), tuple(ctx.issues[before:]))
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
        reads = compiled.reads_by_segment.get(sid, _NONE) if mapped else _NONE
        for n in range(1, len(fields)):
            if fields[n] and n not in reads:
                out[f"{sid}-{n}"] = None
    return list(out)
