"""Rules compiled for the hot path: functions looked up once, conditions pre-bound.

A ``Rule`` is what the YAML says; a ``Step`` is the same rule with its datatype function,
predicates and flags resolved at load time, so converting a message does no lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from mappers.engine.models import ResourceSpec, Rule
from mappers.engine.paths import TargetPath, freeze
from mappers.engine.refs import FieldRef, IdView, RuleView
from mappers.registry import DATATYPES, PREDICATES, DatatypeFn, PredicateFn

FIELD: Final = 0
VALUE: Final = 1
REFERENCE: Final = 2
NO_FIELD: Final = FieldRef("ZZZ", 1, None, None, "")  # stands in for ``ref`` of non-field steps


def _no_datatype(*_: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Step:
    """One rule ready to run."""

    kind: int  # FIELD, VALUE or REFERENCE
    rule: RuleView  # handed to the datatype function (args, table, extra)
    ref: FieldRef  # NO_FIELD unless kind is FIELD
    fn: DatatypeFn  # a no-op unless kind is FIELD
    path: TargetPath
    appends: bool
    conditions: tuple[tuple[PredicateFn, FieldRef], ...]
    value: Any  # frozen (see paths.freeze)
    reference: str | None  # the name of the resource spec referred to
    siblings: dict[str, Any] | None  # values frozen
    fallback: bool  # an earlier rule of the same resource writes the same single value
    own: bool  # the field is in the resource's own segment
    whole: bool  # the datatype reads every repetition itself
    memo: dict[tuple[str, str, str], Any] | None = field(default=None, compare=False)
    direct: str = ""  # a one-step single-valued path with no siblings: written inline
    direct_list: str = ""  # the same for a one-step ``[]`` path


@dataclass(frozen=True, slots=True)
class CompiledResource:
    """A resource spec with its rules compiled; the spec's settings copied out of pydantic."""

    spec: ResourceSpec
    steps: tuple[Step, ...]
    conditions: tuple[tuple[PredicateFn, FieldRef], ...]  # all must hold to build it
    resource: str  # the FHIR resource type
    key: str  # the spec's name (spec.key)
    segment: str
    repeat: bool
    children: frozenset[str]
    required_elements: tuple[str, ...]
    id: IdView


def compile_rule(rule: Rule, segment: str, fallback: bool = False) -> Step:
    """The runtime form of ``rule`` in a spec for ``segment``."""
    kind = FIELD if rule.field is not None else REFERENCE if rule.reference else VALUE
    return Step(
        kind=kind,
        rule=rule.view(),
        ref=rule.field or NO_FIELD,
        fn=DATATYPES[rule.type].fn if rule.type is not None else _no_datatype,
        path=rule.path,
        appends=rule.path.appends,
        conditions=tuple((PREDICATES[name], ref) for name, ref in rule.when.items()),
        value=freeze(rule.value),
        reference=rule.reference,
        siblings={key: freeze(v) for key, v in rule.with_.items()} or None,
        fallback=fallback,
        own=rule.field is not None and rule.field.segment == segment,
        whole=rule.type is not None and DATATYPES[rule.type].whole_field,
        memo={} if rule.type is not None and DATATYPES[rule.type].pure else None,
        direct=rule.path.leaf if not rule.path.leaf_appends and not rule.with_ else "",
        direct_list=rule.path.leaf if rule.path.leaf_appends and not rule.with_ else "",
    )


def compile_resource(spec: ResourceSpec) -> CompiledResource:
    """The runtime form of a resource spec."""
    seen: set[str] = set()
    steps = []
    for rule in spec.rules:
        steps.append(compile_rule(rule, spec.segment, fallback=not rule.path.appends
                                  and rule.path.text in seen))
        seen.add(rule.path.text)
    conditions = tuple((PREDICATES[name], ref) for name, ref in spec.when.items())
    return CompiledResource(spec, tuple(steps), conditions, spec.resource, spec.key,
                            spec.segment, spec.repeat, frozenset(spec.children),
                            tuple(spec.required_elements), spec.id.view())
