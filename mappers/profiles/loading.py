"""One profile file -> a ``Profile``: validated, layered over the built-in specs, compiled.

Every mistake is a ``ProfileError`` naming the file, the line and the field
(``hl7gw.yamlfile`` reads the YAML with its lines).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from hl7gw.yamlfile import parse
from mappers.engine.loader import (
    SpecSet,
    SpecSources,
    _check_resource,
    compile_specs,
    read_specs,
)
from mappers.engine.models import Rule
from mappers.engine.refs import FieldRef, Overlay
from mappers.errors import ProfileError, SpecError
from mappers.profiles.models import ANY, ProfileModel


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



@cache
def _base() -> SpecSources:
    """The built-in spec models, read once: every profile layers over copies of them."""
    return read_specs()


def build_profile(path: str, text: str) -> Profile:
    """One profile file -> a ``Profile`` with its compiled spec set."""
    doc = parse(text, path, ProfileError)
    if not isinstance(doc.data, dict):
        raise ProfileError(f"{path}:1: a profile file must be a YAML mapping "
                           "(profile: NAME, match: ..., ...)")
    try:
        model = ProfileModel.model_validate(doc.data)
    except ValidationError as exc:
        raise ProfileError(doc.describe(exc.errors(include_url=False))) from None
    base = _base()
    tables = dict(base.tables)
    for table, entries in model.codes.items():
        if table not in tables:
            raise ProfileError(f"{path}:{doc.line(('codes', table))}: codes.{table}: "
                               f"unknown code table; known: {', '.join(sorted(tables))}")
        tables[table] = tables[table].model_copy(update={"map": {**tables[table].map,
                                                                 **entries}})
    resources = dict(base.resources)
    for i, mapping in enumerate(model.fields):
        at = ("fields", i)
        res = resources.get(mapping.resource)
        if res is None:
            raise ProfileError(f"{path}:{doc.line((*at, 'resource'))}: fields[{i}].resource:"
                               f" no resource spec {mapping.resource!r}; known: "
                               f"{', '.join(sorted(resources))}")
        try:
            rule = Rule.model_validate(mapping.rule(doc.line(at)))
        except ValueError as exc:
            errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) \
                else [{"loc": ("value",), "msg": str(exc)}]
            raise ProfileError(doc.describe(errors, prefix=at,
                                            data=doc.data["fields"][i])) from None
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
            raise ProfileError(f"{path}:{doc.line(at)}: fields[{i}]: {what}") from None
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


