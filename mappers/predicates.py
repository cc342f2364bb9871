"""Named conditions a spec rule can require (``when: {not_valued: PID-29}``)."""

from __future__ import annotations

from mappers.engine.context import Context
from mappers.engine.models import FieldRef
from mappers.registry import predicate


@predicate("valued")
def valued(ctx: Context, ref: FieldRef) -> bool:
    """True when the field (or component) holds a value (not empty, not ``""``)."""
    return bool(ctx.value(ref)) if ref.component else bool(ctx.values(ref))


@predicate("not_valued")
def not_valued(ctx: Context, ref: FieldRef) -> bool:
    """True when the field (or component) is empty or the explicit null."""
    return not valued(ctx, ref)
