"""Load the outbound specs (once) and destination profiles, every mistake as file:line.

Spec files and profiles are read with ``hl7gw.yamlfile`` (the same reader as the inbound
specs and sender profiles), validated with the models in ``mappers.outbound.models``, then
cross-checked: a message's items name known segment specs, rules name known tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hl7gw.yamlfile import Loc, YamlDocument, load_file
from mappers.errors import ProfileError, SpecError
from mappers.outbound.models import (
    Item,
    MessageSpec,
    OutboundProfileModel,
    SegmentSpec,
    parse_field,
)
from mappers.outbound.tables import reverse_tables
from mappers.profiles.models import FieldMapping

OUTBOUND_ROOT = Path(__file__).resolve().parent.parent / "specs" / "outbound"
M = TypeVar("M", bound=BaseModel)
_LINE_KEYS = {"rules", "body", "events", "when"}


@dataclass(frozen=True, slots=True)
class LoadedMessage:
    """A message spec and the file it came from."""

    spec: MessageSpec
    path: Path


@dataclass(frozen=True, slots=True)
class OutboundSpecs:
    """Every outbound spec, checked: segment specs by name, message specs by precedence."""

    segments: dict[str, SegmentSpec]
    messages: tuple[LoadedMessage, ...]


@dataclass(frozen=True, slots=True)
class ZField:
    """One Z-segment field a destination profile adds, for one resource type."""

    segment: str
    field: int
    resource: str
    writer: str
    table: str | None
    extension: str | None
    value: str | None
    path: str | None


@dataclass(frozen=True, eq=False)
class OutboundProfile:
    """A destination profile, loaded: what it changes in the rendering."""

    name: str
    path: str
    description: str
    timezone: str | None
    authorities: dict[str, str]  # FHIR identifier system -> the destination's CX-4 name
    codes: dict[str, dict[str, str]]  # table -> FHIR code -> v2 code
    local_codes: dict[tuple[str, str], tuple[str, str]]  # (system, code) -> (code, v2 system)
    fields: tuple[ZField, ...]


def _stamp(loc: Loc) -> bool:
    return all(part in _LINE_KEYS for part in loc if isinstance(part, str))


def _load(path: Path, model: type[M], error: type[SpecError] = SpecError
          ) -> tuple[M, YamlDocument]:
    doc = load_file(path, error, what="spec file", stamp=_stamp)
    if not isinstance(doc.data, dict):
        raise error(f"{path}:1: a spec file must be a YAML mapping")
    try:
        return model.model_validate(doc.data), doc
    except ValidationError as exc:
        raise error(doc.describe(exc.errors(include_url=False))) from None


@cache
def outbound_specs() -> OutboundSpecs:
    """The built-in outbound specs, loaded and checked once per process."""
    return load_specs(OUTBOUND_ROOT)


def load_specs(root: Path) -> OutboundSpecs:
    """Segment and message specs under ``root`` (``segments/``, ``messages/``), checked."""
    tables = reverse_tables()
    segments: dict[str, SegmentSpec] = {}
    for path in sorted((root / "segments").glob("*.yaml")):
        spec, _ = _load(path, SegmentSpec)
        if spec.key in segments:
            raise SpecError(f"{path}:1: name: segment spec {spec.key!r} is defined twice")
        for i, rule in enumerate(spec.rules):
            if rule.table is not None and rule.table not in tables:
                raise SpecError(f"{path}:{rule.line}: rules[{i}].table: unknown code table "
                                f"{rule.table!r}; known: {', '.join(sorted(tables))}")
        segments[spec.key] = spec
    messages: list[LoadedMessage] = []
    for path in sorted((root / "messages").glob("*.yaml")):
        msg, _ = _load(path, MessageSpec)
        _check_items(path, msg.body, segments, "body")
        messages.append(LoadedMessage(msg, path))
    messages.sort(key=lambda m: m.spec.precedence)
    return OutboundSpecs(segments, tuple(messages))


def _check_items(path: Path, items: list[Item], segments: dict[str, SegmentSpec],
                 where: str) -> None:
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if item.segment is not None and item.segment not in segments:
            raise SpecError(f"{path}:{item.line}: {at}.segment: no segment spec "
                            f"{item.segment!r}; known: {', '.join(sorted(segments))}")
        if item.body is not None:
            _check_items(path, item.body, segments, f"{at}.body")


def load_outbound_profile(path: Path) -> OutboundProfile:
    """One destination profile file; ``ProfileError`` naming file:line: field."""
    model, doc = _load(path, OutboundProfileModel, ProfileError)
    tables = reverse_tables()
    for table in model.codes:
        if table not in tables:
            raise ProfileError(f"{path}:{doc.line(('codes', table))}: codes.{table}: "
                               f"unknown code table; known: {', '.join(sorted(tables))}")
    fields = []
    for i, mapping in enumerate(model.fields):
        fields.append(_z_field(path, doc, i, mapping, tables))
    local = {(c.to.system, c.to.code): (c.code, "L" if c.system == "*" else c.system)
             for c in model.local_codes}
    return OutboundProfile(
        model.profile, str(path), model.description, model.timezone,
        {system: name for name, system in model.identifier_systems.items()},
        {t: dict(entries) for t, entries in model.codes.items()}, local, tuple(fields))


def _z_field(path: Path, doc: YamlDocument, i: int, mapping: FieldMapping,
             tables: dict[str, Any]) -> ZField:
    seg, number, component = parse_field(mapping.field)
    if component is not None:
        raise ProfileError(f"{path}:{doc.line(('fields', i, 'field'))}: fields[{i}].field: "
                           "name a whole field (ZNW-2), not a component")
    if mapping.table is not None and mapping.table not in tables:
        raise ProfileError(f"{path}:{doc.line(('fields', i, 'table'))}: fields[{i}].table: "
                           f"unknown code table {mapping.table!r}")
    return ZField(seg, number, mapping.resource, mapping.type, mapping.table,
                  mapping.extension, mapping.value, mapping.path)
