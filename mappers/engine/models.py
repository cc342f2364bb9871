"""The spec file formats, as pydantic models checked when the specs load.

Four kinds of YAML file (see docs in ``mappers/specs/README.md``):
``messages/*.yaml`` (MessageSpec), ``resources/*.yaml`` (ResourceSpec holding Rules),
``codes/*.yaml`` (CodeTable). Names of datatypes, predicates and id keys must be registered
in ``mappers.registry``.
"""

from __future__ import annotations

import pathlib
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from mappers.engine.paths import TargetPath
from mappers.engine.refs import FieldRef, IdView, RuleView
from mappers.registry import DATATYPES, ID_KEYS, PREDICATES

_SEGMENT = re.compile(r"[A-Z][A-Z0-9]{2}")
_RESOURCE = re.compile(r"[A-Z][A-Za-z]+")
_IG_MAP = re.compile(r"[A-Z][A-Z0-9]{2}\[[A-Za-z-]+\]")  # an IG segment map: PID[Patient]
IG_SEGMENTS = pathlib.Path(__file__).resolve().parent.parent / "specs" / "ig" / "segments"


def _segment_id(value: Any) -> Any:
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        raise ValueError(f"{value!r} is not a segment id like PID")
    return value


def _whole_field(value: Any) -> FieldRef:
    """``PID-10``, not ``PID-10.1``: the IG maps whole fields."""
    ref = FieldRef.parse(value)
    if ref.component is not None:
        raise ValueError(f"name the whole field ({ref.segment}-{ref.field}), as the IG rows do")
    return ref


def _reason(text: str) -> str:
    if not text.strip():
        raise ValueError("give the reason the field is not mapped")
    return text


Ref = Annotated[FieldRef, BeforeValidator(FieldRef.parse)]
WholeField = Annotated[FieldRef, BeforeValidator(_whole_field)]
Reason = Annotated[str, AfterValidator(_reason)]
Path = Annotated[TargetPath, BeforeValidator(TargetPath.compile)]
SegmentId = Annotated[str, BeforeValidator(_segment_id)]


def known_predicates(when: dict[str, FieldRef]) -> dict[str, FieldRef]:
    """Refuse a ``when:`` naming a predicate that is not registered (the spec's typo)."""
    for name in when:
        if name not in PREDICATES:
            raise ValueError(f"unknown predicate {name!r}; known: "
                             f"{', '.join(sorted(PREDICATES))}")
    return when


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True,
                              arbitrary_types_allowed=True, populate_by_name=True)

    line: int = Field(0, alias="__line__")  # set by the loader: where the mapping starts


class Rule(_Spec):
    """One mapping step: a field through a datatype, a constant, or a reference, to a path."""

    path: Path
    field: Ref | None = None
    type: str | None = None
    table: str | None = None
    args: dict[str, str | int | bool] = Field(default_factory=dict)
    extra: list[Ref] = Field(default_factory=list)
    when: dict[str, Ref] = Field(default_factory=dict)
    value: Any = None
    reference: str | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")

    @field_validator("type")
    @classmethod
    def _known_type(cls, name: str | None) -> str | None:
        if name is not None and name not in DATATYPES:
            raise ValueError(f"unknown datatype {name!r}; known: {', '.join(sorted(DATATYPES))}")
        return name

    @field_validator("when")
    @classmethod
    def _known_predicates(cls, when: dict[str, FieldRef]) -> dict[str, FieldRef]:
        return known_predicates(when)

    @model_validator(mode="after")
    def _one_source(self) -> Rule:
        sources = [k for k, v in (("field", self.field), ("value", self.value),
                                  ("reference", self.reference)) if v is not None]
        if len(sources) != 1:
            raise ValueError("a rule needs exactly one of field, value or reference"
                             f" (found {', '.join(sources) or 'none'})")
        if (self.field is None) != (self.type is None):
            raise ValueError("'field' and 'type' go together")
        if self.field is None and (self.table or self.args or self.extra):
            raise ValueError("'table', 'args' and 'extra' need a 'field'")
        if self.type is not None:
            self._check_args(self.type)
        return self

    def _check_args(self, type_name: str) -> None:
        allowed = DATATYPES[type_name].args
        for key, val in self.args.items():
            if key not in allowed:
                raise ValueError(f"datatype {type_name} takes no arg {key!r}; "
                                 f"it takes: {', '.join(sorted(allowed)) or 'none'}")
            spec = allowed[key]
            if isinstance(spec, tuple) and val not in spec:
                raise ValueError(f"arg {key!r} of {type_name} must be one of {', '.join(spec)}")
            if isinstance(spec, type) and not isinstance(val, spec):
                raise ValueError(f"arg {key!r} of {type_name} must be a {spec.__name__}")

    def view(self) -> RuleView:
        """The parts of this rule a datatype function reads, as a compiled class."""
        return RuleView(self.field, self.type, self.table, dict(self.args), tuple(self.extra))

    def reads(self) -> list[FieldRef]:
        """Every field this rule looks at (so the field is not reported as unmapped)."""
        return [r for r in (self.field, *self.extra, *self.when.values()) if r is not None]


class IdSpec(_Spec):
    """How a resource gets its deterministic id: a named key function and its field."""

    key: str
    field: Ref | None = None
    extra: list[Ref] = Field(default_factory=list)  # more fields the key is made of
    scope: list[Ref] = Field(default_factory=list)  # first valued one scopes the key
    required: bool = False  # no key -> RequiredFieldMissing(segment, field)
    fallback: str | None = None  # key function to use when ``key`` gives nothing
    shared: bool = False  # same key = same resource (a practitioner): written once

    def view(self) -> IdView:
        """These settings with the key functions looked up, as a compiled class."""
        return IdView(ID_KEYS[self.key], ID_KEYS[self.fallback] if self.fallback else None,
                      self.field, tuple(self.extra), tuple(self.scope), self.required,
                      self.shared)

    def reads(self) -> list[FieldRef]:
        """Every field the key looks at."""
        return [r for r in (self.field, *self.extra, *self.scope) if r is not None]

    @field_validator("key", "fallback")
    @classmethod
    def _known_key(cls, name: str | None) -> str | None:
        if name is not None and name not in ID_KEYS:
            raise ValueError(f"unknown id key {name!r}; known: {', '.join(sorted(ID_KEYS))}")
        return name


class ResourceSpec(_Spec):
    """How one segment becomes one FHIR resource."""

    resource: str
    segment: SegmentId
    id: IdSpec
    name: str | None = None  # the name message specs and references use; default: resource
    repeat: bool = False  # one resource per occurrence of the segment (not just the first)
    children: list[SegmentId] = Field(default_factory=list)  # trailing segments read with it
    when: dict[str, Ref] = Field(default_factory=dict)  # named predicates: build only if all hold
    required_elements: list[str] = Field(default_factory=list)
    rules: list[Rule]
    # IG segment maps this spec implements (PID[Patient]); default: SEG[resource] if the IG
    # has it. Checked by tests/unit/mappers/test_ig_conformance.py, cited by --explain.
    ig: list[str] | None = None
    not_mapped: dict[WholeField, Reason] = Field(default_factory=dict)  # IG field -> why not

    @property
    def key(self) -> str:
        """The name this spec is listed and referred to by."""
        return self.name or self.resource

    @field_validator("when")
    @classmethod
    def _known_predicates(cls, when: dict[str, FieldRef]) -> dict[str, FieldRef]:
        return known_predicates(when)

    @field_validator("ig", mode="before")
    @classmethod
    def _ig_maps(cls, names: Any) -> Any:
        """One name or a list; each an IG segment map shipped in specs/ig/segments/."""
        names = [names] if isinstance(names, str) else names
        for name in names if isinstance(names, list) else []:
            if not isinstance(name, str) or not _IG_MAP.fullmatch(name):
                raise ValueError(f"{name!r} is not an IG segment map name like PID[Patient]")
            if not (IG_SEGMENTS / f"{name}.csv").is_file():
                known = sorted(p.stem for p in IG_SEGMENTS.glob(f"{name[:3]}[[]*.csv"))
                raise ValueError(f"no IG segment map {name!r}; for {name[:3]}: "
                                 f"{', '.join(known) or 'none'}")
        return names

    @field_validator("resource")
    @classmethod
    def _resource_name(cls, name: str) -> str:
        if not _RESOURCE.fullmatch(name):
            raise ValueError(f"{name!r} is not a FHIR resource type name")
        return name


class MessageSpec(_Spec):
    """Which resources a message structure produces, for which trigger events and versions."""

    message: str
    structure: str
    events: list[str]
    versions: list[str]
    resources: list[str]
    required_segments: list[SegmentId] = Field(default_factory=list)
    expected_segments: list[SegmentId] = Field(default_factory=list)
    ignored_fields: list[Ref] = Field(default_factory=list)


TableValue = str | bool | int | dict[str, str] | None


class CodeTable(_Spec):
    """A code table: v2 code -> FHIR code, Coding (when ``system`` is set) or object."""

    table: str
    description: str
    source_system: str | None = None  # the v2 code system URI, for the original coding
    system: str | None = None  # target system: string entries become Codings in it
    user_defined: bool = False  # site codes: an unknown code is not an issue
    ignore_case: bool = False  # "Booked", "BOOKED" and "booked" are the same code
    map: dict[str, TableValue] = Field(default_factory=dict)

    def resolved(self) -> dict[str, Any]:
        """The map with string entries turned into Codings when the table has a ``system``."""
        if self.ignore_case:
            return {code.upper(): v for code, v in
                    self.model_copy(update={"ignore_case": False}).resolved().items()}
        if self.system is None:
            return dict(self.map)
        out: dict[str, Any] = {}
        for code, entry in self.map.items():
            if isinstance(entry, str):
                out[code] = {"system": self.system, "code": entry}
            elif isinstance(entry, dict):
                out[code] = {"system": self.system, **entry}
            else:
                out[code] = entry
        return out
