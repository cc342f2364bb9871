"""Named Python functions the YAML specs refer to: datatypes, predicates and id keys.

Specs name these functions (``type: XPN``, ``when: {valued: PID-29}``, ``key: identifier``);
the loader refuses a spec naming one that is not registered here. Keeping conditions and
conversions in small named functions is what keeps the specs data, not a program.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mappers.engine.context import Context
    from mappers.engine.refs import FieldRef, IdView, RuleView
    from mappers.hl7v2 import Repetition, Segment

DatatypeFn = Callable[["Repetition", "Context", "RuleView"], Any]
PredicateFn = Callable[["Context", "FieldRef"], bool]
IdKeyFn = Callable[["Context", "Segment", "IdView"], "str | None"]

# An argument a datatype accepts: the allowed string values, or the Python type it must have.
ArgSpec = tuple[str, ...] | type


@dataclass(frozen=True, slots=True)
class Datatype:
    """A registered datatype function and the ``args`` it accepts from a spec rule."""

    name: str
    fn: DatatypeFn
    args: Mapping[str, ArgSpec] = field(default_factory=dict)
    # The output depends only on the value, the rule and the code tables (no time zone,
    # no other field) and the value is reference data (codes, staff, places), not a
    # patient's: the engine may remember results across messages.
    pure: bool = False
    # The function reads the whole field itself (all repetitions, via ``ctx.values``): the
    # engine hands it the first repetition once and reports no ignored repetitions.
    whole_field: bool = False


DATATYPES: dict[str, Datatype] = {}
PREDICATES: dict[str, PredicateFn] = {}
ID_KEYS: dict[str, IdKeyFn] = {}


def datatype(*names: str, args: Mapping[str, ArgSpec] | None = None, pure: bool = False,
             whole_field: bool = False) -> Callable[[DatatypeFn], DatatypeFn]:
    """Register a datatype function under one or more HL7 datatype names."""

    def register(fn: DatatypeFn) -> DatatypeFn:
        for name in names:
            DATATYPES[name] = Datatype(name, fn, dict(args or {}), pure, whole_field)
        return fn

    return register


def predicate(name: str) -> Callable[[PredicateFn], PredicateFn]:
    """Register a named condition that a rule's ``when`` can use."""

    def register(fn: PredicateFn) -> PredicateFn:
        PREDICATES[name] = fn
        return fn

    return register


def id_key(name: str) -> Callable[[IdKeyFn], IdKeyFn]:
    """Register a function giving the stable key a resource id is hashed from."""

    def register(fn: IdKeyFn) -> IdKeyFn:
        ID_KEYS[name] = fn
        return fn

    return register
