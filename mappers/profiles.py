"""Per-sender profiles: one sender's quirks as data, layered over the built-in specs.

A profile is one YAML file in a profiles folder. It is chosen by the message's MSH-3
(sending application), MSH-4 (sending facility) and MSH-12 (version); the most specific
match wins (each named key counts one; ``*`` or absent matches anything), and two profiles
with the same match are refused as ambiguous. A profile may set:

- ``timezone`` and ``charset`` for messages that carry none (the gateway applies charset);
- ``identifier_systems``: assigning authority (HD.1 namespace or HD.2 universal id) ->
  the FHIR identifier system used for CX and XCN identifiers;
- ``patient_key``: which identifier keys the Patient id (a field other than PID-3, and/or
  the repetition of a given authority and CX.5 type);
- ``codes``: code table entries overridden or added, per table (``"0078": {HIGHISH: H}``);
- ``local_codes``: a local coding (CWE.3 system as sent, code) -> a standard Coding, put
  first in the CodeableConcept, the sender's own coding kept after it;
- ``fields``: extra field mappings, typically Z-segments: a field through a datatype to an
  extension (``extension: URL``) or to an element (``path:``) of a chosen resource spec.
  For a resource built once per segment (Observation per OBX), a Z-segment right after
  that segment (after its own child segments, such as NTE) is the one read;
- ``ignore_segments``: segments neither mapped nor reported as unmapped.

Nothing is forked: a profile's changes are applied to copies of the built-in spec models
and compiled into its own spec set when the profile loads, so a conversion with a profile
costs what one without does. Every mistake is a ``ProfileError`` naming the file, the line
and the field.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mappers.engine.loader import (
    SpecSet,
    SpecSources,
    _check_resource,
    compile_specs,
    read_specs,
)
from mappers.engine.models import Rule, TableValue
from mappers.engine.refs import FieldRef, Overlay
from mappers.errors import ProfileError, SpecError

# The value[x] element an extension gets for each datatype's output.
EXTENSION_VALUE: dict[str, str] = {
    "ST": "valueString", "TX": "valueString", "FT": "valueString", "SI": "valueString",
    "text": "valueString", "code": "valueCode", "ID": "valueCode", "IS": "valueCode",
    "CWE": "valueCodeableConcept", "CE": "valueCodeableConcept",
    "CNE": "valueCodeableConcept", "CF": "valueCodeableConcept",
    "TS": "valueDateTime", "DTM": "valueDateTime", "DT": "valueDate",
    "NM": "valueDecimal", "CX": "valueIdentifier", "identifier": "valueIdentifier",
    "EI": "valueIdentifier", "XPN": "valueHumanName", "XAD": "valueAddress",
    "XTN": "valueContactPoint", "XCN": "valueReference", "quantity": "valueQuantity",
}


def _text(value: Any) -> Any:
    """YAML reads ``version: 2.5`` as a number: take it as the text it was meant to be."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Text = Annotated[str, BeforeValidator(_text)]


def _values(value: Any) -> Any:
    """A match key: one value or a list of them (``[LAB, LAB2]``), as a tuple of text."""
    items = value if isinstance(value, list) else [value]
    out = tuple(_text(v) for v in items)
    if not out or not all(isinstance(v, str) and v.strip() for v in out):
        raise ValueError("give a value or a list of values (* for any)")
    if "*" in out and len(out) > 1:
        raise ValueError("'*' (any) cannot be listed with other values")
    return out


MatchValues = Annotated[tuple[str, ...], BeforeValidator(_values)]
ANY: tuple[str, ...] = ("*",)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Model):
    """Which messages a profile is for: MSH-3.1, MSH-4.1 and MSH-12.1 (``*``: any).

    Each key takes one value or a list (a system that sends under several names).
    """

    application: MatchValues = ANY
    facility: MatchValues = ANY
    version: MatchValues = ANY


class PatientKey(_Model):
    """Which identifier the Patient id is keyed on."""

    field: Text | None = None  # e.g. PID-2 for a sender that puts the MRN there
    authority: Text | None = None  # CX.4 namespace or universal id
    type: Text | None = None  # CX.5 identifier type code, e.g. MR

    @field_validator("field")
    @classmethod
    def _pid_field(cls, value: str | None) -> str | None:
        if value is not None:
            ref = FieldRef.parse(value)
            if ref.segment != "PID" or ref.component is not None:
                raise ValueError(f"{value!r}: the patient key must be a PID field, like PID-2")
        return value


class Coding(_Model):
    """A standard coding a local code translates to."""

    system: str
    code: Text
    display: str | None = None


class LocalCode(_Model):
    """A local coding (as the sender sends it in CWE.1/CWE.3) and its standard coding."""

    system: Text = "*"  # CWE.3 as sent ("L", "99LAB"); * = whatever it says
    code: Text
    to: Coding


class FieldMapping(_Model):
    """One more field to map: usually a Z-segment field to an extension or an element."""

    field: Text
    resource: str  # a resource spec name: Patient, Coverage, Observation, Encounter...
    type: str
    table: Text | None = None
    args: dict[str, str | int | bool] = Field(default_factory=dict)
    extension: str | None = None  # the extension's url: the value goes in extension[]
    value: str | None = None  # the extension's value[x] element, when not the type's usual
    path: str | None = None  # or a target element path, as in resource specs

    @model_validator(mode="after")
    def _one_target(self) -> FieldMapping:
        if (self.extension is None) == (self.path is None):
            raise ValueError("give exactly one of 'extension' (a URL) or 'path' (an element)")
        if self.value is not None and self.extension is None:
            raise ValueError("'value' names an extension's value[x]: it needs 'extension'")
        return self

    def rule(self, line: int) -> dict[str, Any]:
        """The resource spec rule this mapping adds, as spec data (validated by ``Rule``)."""
        data: dict[str, Any] = {"__line__": line, "field": self.field, "type": self.type}
        if self.table is not None:
            data["table"] = self.table
        if self.args:
            data["args"] = dict(self.args)
        if self.extension is not None:
            value = self.value or EXTENSION_VALUE.get(self.type)
            if self.type in ("TS", "DTM") and self.args.get("as") == "date":
                value = self.value or "valueDate"
            if value is None:
                raise ValueError(f"say which value[x] an extension of type {self.type} "
                                 "takes with 'value:' (e.g. valueString)")
            data["path"] = f"extension[].{value}"
            data["with"] = {"url": self.extension}
        else:
            data["path"] = self.path
        return data


class ProfileModel(_Model):
    """One profile file, as written."""

    profile: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    match: Match = Field(default_factory=Match)
    timezone: str | None = None
    charset: str | None = None
    identifier_systems: dict[Text, str] = Field(default_factory=dict)
    patient_key: PatientKey | None = None
    codes: dict[Text, dict[Text, TableValue]] = Field(default_factory=dict)
    local_codes: list[LocalCode] = Field(default_factory=list)
    fields: list[FieldMapping] = Field(default_factory=list)
    ignore_segments: list[Text] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
        return value

    @field_validator("charset")
    @classmethod
    def _charset(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError as exc:
                raise ValueError(f"unknown charset {value!r}") from exc
        return value

    @field_validator("ignore_segments")
    @classmethod
    def _segments(cls, value: list[str]) -> list[str]:
        for seg in value:
            if len(seg) != 3 or not seg.isalnum() or not seg.isupper() or seg == "MSH":
                raise ValueError(f"{seg!r} is not a segment id that can be ignored (like ZXX)")
        return value


@dataclass(frozen=True, eq=False)
class Profile:
    """A loaded profile: its match, settings and compiled spec set."""

    name: str
    path: str
    description: str
    application: str  # as shown: "OLDLAB", "LAB,LAB2" or "*"
    facility: str
    version: str
    timezone: str | None
    charset: str | None
    specs: SpecSet = field(repr=False)
    overlay: Overlay | None = field(repr=False)
    ignore_segments: frozenset[str]
    # per key (application, facility, version): the values matched, None for any
    keys: tuple[frozenset[str] | None, ...] = field(default=(None, None, None), repr=False)

    @property
    def specificity(self) -> int:
        """How many of application, facility and version the profile names."""
        return sum(k is not None for k in self.keys)

    def matches(self, application: str, facility: str, version: str) -> bool:
        """True when this profile is for a message with these MSH-3, MSH-4 and MSH-12."""
        app, fac, ver = self.keys
        return ((app is None or application in app) and (fac is None or facility in fac)
                and (ver is None or version in ver))

    def describe_match(self) -> str:
        """``application=OLDLAB facility=* version=2.3``, for listings."""
        return (f"application={self.application} facility={self.facility} "
                f"version={self.version}")


@dataclass(frozen=True)
class ProfileSet:
    """Every profile of a folder, ready to select by sender; immutable (reload = new set)."""

    profiles: tuple[Profile, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)  # file name -> YAML text

    @classmethod
    def load(cls, directory: Path) -> ProfileSet:
        """Load ``directory/*.yaml``; a ``ProfileError`` lists every problem found."""
        if not directory.is_dir():
            raise ProfileError(f"{directory}: profiles folder not found")
        sources: dict[str, str] = {}
        for path in sorted(directory.glob("*.yaml")):
            try:
                sources[path.name] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ProfileError(f"{path}:1: cannot read: {exc}") from None
        return cls.from_sources(sources, str(directory))

    @classmethod
    def from_sources(cls, sources: Mapping[str, str], origin: str = "<profiles>") -> ProfileSet:
        """Build from file name -> text (what ``load`` read): how workers get a snapshot."""
        errors: list[str] = []
        loaded: list[Profile] = []
        for name in sorted(sources):
            path = f"{origin}/{name}"
            try:
                loaded.append(_build(path, sources[name]))
            except ProfileError as exc:
                errors.append(str(exc))
        errors += _clashes(loaded)
        if errors:
            raise ProfileError("\n".join(errors))
        order = sorted(loaded, key=lambda p: -p.specificity)  # stable: file order in ties
        return cls(tuple(order), dict(sources))

    def names(self) -> list[str]:
        """Profile names, in file order."""
        return sorted((p.name for p in self.profiles), key=lambda n: self._by_name()[n].path)

    def get(self, name: str) -> Profile:
        """The profile called ``name``."""
        found = self._by_name().get(name)
        if found is None:
            known = ", ".join(self.names()) or "none loaded"
            raise ProfileError(f"no profile named {name!r}; known: {known}")
        return found

    def _by_name(self) -> dict[str, Profile]:
        return {p.name: p for p in self.profiles}

    def select(self, application: str, facility: str, version: str) -> Profile | None:
        """The most specific profile for this sender and version, or None."""
        for profile in self.profiles:
            if profile.matches(application, facility, version):
                return profile
        return None

    def select_text(self, text: str) -> Profile | None:
        """``select`` with MSH-3, MSH-4 and MSH-12 read from the message text."""
        if not self.profiles:
            return None
        app, fac, version = msh_sender(text)
        return self.select(app, fac, version)


EMPTY_PROFILES = ProfileSet()


def msh_sender(text: str) -> tuple[str, str, str]:
    """(MSH-3.1, MSH-4.1, MSH-12.1) of a message, "" where absent; no full parse."""
    start = text.find("MSH")
    if start < 0 or len(text) < start + 8:
        return "", "", ""
    sep = text[start + 3]
    end = len(text)
    for stop in ("\r", "\n"):
        at = text.find(stop, start)
        if 0 <= at < end:
            end = at
    fields = text[start:end].split(sep)
    comp = fields[1][:1] if len(fields) > 1 else "^"

    def first(n: int) -> str:
        return fields[n].split(comp)[0].strip() if len(fields) > n and comp else ""

    return first(2), first(3), first(11)


@cache
def _base() -> SpecSources:
    """The built-in spec models, read once: every profile layers over copies of them."""
    return read_specs()


def _build(path: str, text: str) -> Profile:
    """One profile file -> a ``Profile`` with its compiled spec set."""
    data, lines = _parse(path, text)
    try:
        model = ProfileModel.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_describe(path, exc.errors(), lines)) from None
    base = _base()
    tables = dict(base.tables)
    for table, entries in model.codes.items():
        if table not in tables:
            raise ProfileError(f"{path}:{_line(lines, ('codes', table))}: codes.{table}: "
                               f"unknown code table; known: {', '.join(sorted(tables))}")
        tables[table] = tables[table].model_copy(update={"map": {**tables[table].map,
                                                                 **entries}})
    resources = dict(base.resources)
    for i, mapping in enumerate(model.fields):
        at = ("fields", i)
        res = resources.get(mapping.resource)
        if res is None:
            raise ProfileError(f"{path}:{_line(lines, (*at, 'resource'))}: fields[{i}].resource:"
                               f" no resource spec {mapping.resource!r}; known: "
                               f"{', '.join(sorted(resources))}")
        try:
            rule = Rule.model_validate(mapping.rule(_line(lines, at)))
        except ValueError as exc:
            errors = exc.errors() if isinstance(exc, ValidationError) else \
                [{"loc": ("value",), "msg": str(exc)}]
            raise ProfileError(_describe(path, errors, lines, prefix=at)) from None
        update: dict[str, Any] = {"rules": [*res.rules, rule]}
        seg = rule.field.segment if rule.field is not None else ""
        if res.repeat and seg.startswith("Z") and seg not in res.children:
            # a Z-segment after a repeating segment belongs to the one it follows (the
            # ZLB after each OBX), like the spec's own child segments (its NTE)
            update["children"] = [*res.children, seg]
        changed = res.model_copy(update=update)
        try:
            _check_resource(Path(path), changed, tables)
        except SpecError as exc:
            what = str(exc).split(": ", 2)[-1]
            raise ProfileError(f"{path}:{_line(lines, at)}: fields[{i}]: {what}") from None
        resources[mapping.resource] = changed
    key = model.patient_key
    if key is not None and key.field is not None:
        ref = FieldRef.parse(key.field)
        for name, res in list(resources.items()):
            if res.resource == "Patient" and res.id.field is not None \
                    and res.id.field.segment == "PID":
                resources[name] = res.model_copy(
                    update={"id": res.id.model_copy(update={"field": ref})})
    try:
        specs = compile_specs(SpecSources(tables, resources, base.messages, base.origin))
    except SpecError as exc:
        raise ProfileError(f"{path}:1: {exc}") from None
    overlay = None
    if model.identifier_systems or model.local_codes or (key is not None and (
            key.authority is not None or key.type is not None)):
        overlay = Overlay(dict(model.identifier_systems),
                          {(c.system, c.code): c.to.model_dump(exclude_none=True)
                           for c in model.local_codes},
                          key.authority if key else None, key.type if key else None)
    m = model.match
    keys = tuple(None if values == ANY else frozenset(values)
                 for values in (m.application, m.facility, m.version))
    return Profile(model.profile, path, model.description, ",".join(m.application),
                   ",".join(m.facility), ",".join(m.version), model.timezone, model.charset,
                   specs, overlay, frozenset(model.ignore_segments), keys)


def _clashes(profiles: list[Profile]) -> list[str]:
    """Profiles that cannot be told apart are refused: one name used twice, or two equally
    specific matches that some message fits both of (which one applies would be a guess)."""
    out: list[str] = []
    names: dict[str, Profile] = {}
    for i, p in enumerate(profiles):
        if p.name in names:
            out.append(f"{p.path}:1: profile: name {p.name!r} is also used by "
                       f"{names[p.name].path}")
        names.setdefault(p.name, p)
        for q in profiles[:i]:
            if q.specificity != p.specificity:
                continue  # the more specific one wins: no guess
            both = _overlap(p, q)
            if both is None:
                continue
            if p.keys == q.keys:
                out.append(f"{p.path}:1: match: the same match as {q.path} "
                           f"({p.describe_match()}): which one applies would be a guess")
            else:
                out.append(f"{p.path}:1: match: a message from {both} fits both this and "
                           f"{q.path}, equally specific: narrow one, or add a profile that "
                           "names that combination")
            break
    return out


def _overlap(p: Profile, q: Profile) -> str | None:
    """``application=A facility=X version=*`` that both fit, or None when no message does."""
    parts = []
    for label, a, b in zip(("application", "facility", "version"), p.keys, q.keys,
                           strict=True):
        if a is None or b is None:
            common = b if a is None else a
            shown = "*" if common is None else sorted(common)[0]
        else:
            shared = a & b
            if not shared:
                return None
            shown = sorted(shared)[0]
        parts.append(f"{label}={shown}")
    return " ".join(parts)


# -- YAML with line numbers --------------------------------------------------------------

Lines = dict[tuple[str | int, ...], int]


def _parse(path: str, text: str) -> tuple[Any, Lines]:
    """The file's data and the line of every key and item, by path."""
    try:
        node = yaml.compose(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(f"{path}:{line}: not valid YAML: {problem}") from None
    if not isinstance(node, yaml.MappingNode):
        raise ProfileError(f"{path}:1: a profile file must be a YAML mapping "
                           "(profile: NAME, match: ..., ...)")
    lines: Lines = {}

    def walk(n: yaml.Node, at: tuple[str | int, ...]) -> None:
        lines[at] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                walk(value, (*at, str(key.value)))
                lines[(*at, str(key.value))] = key.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*at, i))

    walk(node, ())
    return yaml.load(text, Loader=yaml.CSafeLoader), lines


def _line(lines: Lines, at: tuple[str | int, ...]) -> int:
    """The line of ``at``, else of its nearest parent that has one."""
    for i in range(len(at), -1, -1):
        if at[:i] in lines:
            return lines[at[:i]]
    return 1


def _describe(path: str, errors: Iterable[Any], lines: Lines,
              prefix: tuple[str | int, ...] = ()) -> str:
    """One ``file:line: field: message`` line per pydantic error."""
    out = []
    for err in errors:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (
            "[" in p or p in {"str", "int", "bool", "float", "none", "__line__"})))
        loc = (*prefix, *loc)
        name = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p)
                       for i, p in enumerate(loc)) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        out.append(f"{path}:{_line(lines, loc)}: {name}: {msg}")
    return "\n".join(out[:5])
