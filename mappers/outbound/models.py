"""The outbound spec files and the destination profile, as pydantic models.

Three kinds of YAML file (see ``mappers/specs/outbound/README.md``): ``segments/*.yaml``
(how one resource fills one segment: ``SegmentSpec``), ``messages/*.yaml`` (which segments a
message is made of, from which resources: ``MessageSpec``) and destination profiles
(``OutboundProfileModel``). Names of writers are checked against ``mappers.outbound.writers``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hl7gw.fieldtypes import Charset, TimeZone
from mappers.outbound.datatypes import WRITERS
from mappers.outbound.paths import check_path
from mappers.profiles.models import FieldMapping, LocalCode, Match, PatientKey, Text

_FIELD = re.compile(r"(?P<seg>[A-Z][A-Z0-9]{2})-(?P<field>[1-9][0-9]*)(?:\.(?P<comp>[1-9][0-9]*))?")
_SEGMENT = re.compile(r"[A-Z][A-Z0-9]{2}")
_VERSION = re.compile(r"2\.[0-9](\.[0-9])?")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    line: int = Field(0, alias="__line__")  # set by the loader: where the mapping starts


def parse_field(text: str) -> tuple[str, int, int | None]:
    """``OBX-5`` -> ("OBX", 5, None); ``OBX-6.3`` -> ("OBX", 6, 3); ``ValueError`` else."""
    m = _FIELD.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a field like PID-3 or OBX-6.1")
    comp = m.group("comp")
    return m.group("seg"), int(m.group("field")), int(comp) if comp else None


class Condition(_Model):
    """One test: on an element (``path`` with ``equals``, ``in``, ``gt`` or ``present``),
    on the version being written (``version_at_least``/``version_below``), or ``any`` of
    several conditions."""

    path: str | None = None
    equals: Text | int | float | bool | None = None
    in_: list[Text] | None = Field(None, alias="in")
    gt: float | None = None
    present: bool | None = None
    prefix: Text | None = None  # the element's text starts with this (a MIME type...)
    version_at_least: Text | None = None
    version_below: Text | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [k for k in ("equals", "in_", "gt", "present", "prefix", "version_at_least",
                             "version_below", "any", "not_") if getattr(self, k) is not None]
        if len(tests) != 1:
            raise ValueError("a condition needs exactly one of equals, in, gt, present, prefix, "
                             "version_at_least, version_below, any or not "
                             f"(found {', '.join(t.rstrip('_') for t in tests) or 'none'})")
        needs_path = tests[0] in ("equals", "in_", "gt", "present", "prefix")
        if needs_path != (self.path is not None):
            raise ValueError(f"'{tests[0].rstrip('_')}' " + (
                "needs a 'path'" if needs_path else "takes no 'path'"))
        if self.path is not None:
            check_path(self.path)
        for version in (self.version_at_least, self.version_below):
            if version is not None and not _VERSION.fullmatch(version):
                raise ValueError(f"{version!r} is not an HL7 version like 2.5.1")
        return self


def _conditions(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class Rule(_Model):
    """One v2 field (or component) from an element, through a named writer; or a constant."""

    field: str
    path: str | None = None
    value: Text | int | float | list[Text] | None = None
    type: str = "ST"
    table: Text | None = None
    args: dict[str, str | int | bool] = Field(default_factory=dict)
    where: dict[str, Text | int | bool | list[Text]] = Field(default_factory=dict)
    when: list[Condition] = Field(default_factory=list)

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, value: Any) -> Any:
        return _conditions(value)

    @field_validator("field")
    @classmethod
    def _field(cls, text: str) -> str:
        parse_field(text)
        return text

    @field_validator("type")
    @classmethod
    def _writer(cls, name: str) -> str:
        if name not in WRITERS:
            raise ValueError(f"unknown writer {name!r}; known: {', '.join(sorted(WRITERS))}")
        return name

    @field_validator("path")
    @classmethod
    def _path(cls, text: str | None) -> str | None:
        if text is not None:
            check_path(text)
        return text

    @field_validator("where")
    @classmethod
    def _where(cls, where: dict[str, Any]) -> dict[str, Any]:
        for key in where:
            check_path(key)
        return where

    @model_validator(mode="after")
    def _one_source(self) -> Rule:
        if (self.path is None) == (self.value is None):
            raise ValueError("a rule needs exactly one of 'path' (an element) or 'value' "
                             "(a constant)")
        allowed = WRITERS[self.type].args
        for key, val in self.args.items():
            if key not in allowed:
                raise ValueError(f"writer {self.type} takes no arg {key!r}; it takes: "
                                 f"{', '.join(sorted(allowed)) or 'none'}")
            if not isinstance(val, allowed[key]):
                raise ValueError(f"arg {key!r} of {self.type} must be a "
                                 f"{allowed[key].__name__}")
        return self

    @property
    def target(self) -> tuple[str, int, int | None]:
        """(segment, field, component) this rule writes."""
        return parse_field(self.field)


class SetId(_Model):
    """A set id field: 1, 2, 3... restarted after any segment named in ``reset_after``
    (``"*"``: after any other segment)."""

    field: int = Field(1, ge=1)
    reset_after: list[Text] = Field(default_factory=list)


class SegmentSpec(_Model):
    """How one resource (or element, e.g. an Annotation) fills one segment."""

    segment: str
    name: str | None = None  # the name message specs use; default: the segment id
    reads: str | None = None  # what it reads, for the docs: "Patient", "Annotation"
    set_id: SetId | None = None
    rules: list[Rule]

    @field_validator("segment")
    @classmethod
    def _segment(cls, text: str) -> str:
        if not _SEGMENT.fullmatch(text) or text == "MSH":
            raise ValueError(f"{text!r} is not a segment id like PID (MSH is written by "
                             "the renderer)")
        return text

    @model_validator(mode="after")
    def _own_fields(self) -> SegmentSpec:
        for i, rule in enumerate(self.rules):
            if rule.target[0] != self.segment:
                raise ValueError(f"rules[{i}]: {rule.field} is not a field of "
                                 f"{self.segment}")
        return self

    @property
    def key(self) -> str:
        """The name message specs refer to it by."""
        return self.name or self.segment


class Item(_Model):
    """A segment (``segment``: a segment spec's name) or a group (``body``) repeated for
    each resource ``from`` finds."""

    segment: str | None = None
    group: str | None = None  # a label, for people and errors
    body: list[Item] | None = None
    from_: str = Field("$this", alias="from")
    where: dict[str, Text | int | bool | list[Text]] = Field(default_factory=dict)
    when: list[Condition] = Field(default_factory=list)
    required: str | None = None  # nothing found: OutboundError with this text
    first: bool = False  # only the first resource found

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, value: Any) -> Any:
        return _conditions(value)

    @field_validator("from_")
    @classmethod
    def _from(cls, text: str) -> str:
        check_path(text)
        return text

    @model_validator(mode="after")
    def _kind(self) -> Item:
        if (self.segment is None) == (self.body is None):
            raise ValueError("an item is either a 'segment' or a group with a 'body'")
        return self


class EventSpec(_Model):
    """A trigger event and its structure, chosen when its conditions hold on the focus."""

    event: str = Field(pattern=r"^[A-Z][0-9A-Z]{2}$")
    structure: str = Field(pattern=r"^[A-Z]{3}_[A-Z][0-9A-Z]{2}$")
    when: list[Condition] = Field(default_factory=list)
    default: bool = True  # False: only when the caller asks for this event

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, value: Any) -> Any:
        return _conditions(value)


class MessageSpec(_Model):
    """One message kind rendered from one focus resource type."""

    message: str = Field(pattern=r"^[A-Z]{3}$")
    focus: str = Field(pattern=r"^[A-Z][A-Za-z]+$")
    precedence: int  # a Bundle holding several focus types: the lowest wins
    description: str = ""
    events: list[EventSpec] = Field(min_length=1)
    body: list[Item]


class OutboundProfileModel(_Model):
    """A destination profile file, as written.

    ``match``, ``charset``, ``patient_key`` and ``ignore_segments`` are inbound keys: they
    are accepted (so a sender profile file loads) and ignored here.
    """

    profile: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    timezone: TimeZone | None = None
    identifier_systems: dict[Text, str] = Field(default_factory=dict)
    codes: dict[Text, dict[Text, Text]] = Field(default_factory=dict)
    local_codes: list[LocalCode] = Field(default_factory=list)
    fields: list[FieldMapping] = Field(default_factory=list)
    match: Match | None = None
    charset: Charset | None = None
    patient_key: PatientKey | None = None
    ignore_segments: list[Text] = Field(default_factory=list)

    @field_validator("fields")
    @classmethod
    def _z_fields(cls, fields: list[FieldMapping]) -> list[FieldMapping]:
        for i, mapping in enumerate(fields):
            seg, _, _ = parse_field(mapping.field)
            if not seg.startswith("Z"):
                raise ValueError(f"fields[{i}]: {mapping.field}: a destination profile "
                                 "adds Z-segments only (ZNW-2, ...)")
            if mapping.type not in WRITERS:
                raise ValueError(f"fields[{i}]: unknown writer {mapping.type!r}; known: "
                                 f"{', '.join(sorted(WRITERS))}")
            if mapping.path is not None:
                check_path(mapping.path)
        return fields
