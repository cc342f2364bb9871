"""Load the YAML specs once, check them, and index them for conversion.

Every problem becomes a ``SpecError`` naming the file, the line and the field, e.g.
``resources/patient.yaml:41: rules[6].type: unknown datatype 'XPNN'``. Line numbers come
from the YAML node marks (``hl7gw.yamlfile``, shared with the config and the profiles);
each mapping in a spec carries its own start line (``__line__``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

import mappers.datatypes
import mappers.ids
import mappers.predicates  # noqa: F401  (registers the predicates)
from hl7gw.yamlfile import Loc, load_file
from mappers.engine.models import CodeTable, MessageSpec, ResourceSpec
from mappers.engine.steps import CompiledResource, compile_resource
from mappers.errors import SpecError

SPEC_ROOT = Path(__file__).resolve().parent.parent / "specs"
_CARRY_LINES = {"rules", "id"}  # keys whose mappings are spec objects (not free-form data)
M = TypeVar("M", bound=BaseModel)

# Fields the engine itself reads for every message: separators, time, type, id, version.
ENVELOPE_FIELDS = frozenset({("MSH", 1), ("MSH", 2), ("MSH", 7), ("MSH", 9), ("MSH", 10),
                             ("MSH", 12)})


@dataclass(frozen=True, slots=True)
class CompiledMessage:
    """A message spec with its resource specs and the fields they read, ready to run."""

    spec: MessageSpec
    resources: tuple[CompiledResource, ...]
    reads: frozenset[tuple[str, int]]  # (segment id, field number) some spec reads
    segments: frozenset[str]  # segment ids whose first occurrence is mapped
    reads_by_segment: dict[str, frozenset[int]]  # the same reads, by segment id


@dataclass(frozen=True, slots=True)
class SpecSet:
    """All specs, loaded and cross-checked."""

    messages: dict[tuple[str, str], CompiledMessage]  # (message code, trigger) -> spec
    resources: dict[str, ResourceSpec]
    tables: dict[str, CodeTable]
    resolved_tables: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SpecSources:
    """The spec models as read from their files, before compiling: what profiles layer on."""

    tables: dict[str, CodeTable]
    resources: dict[str, ResourceSpec]
    messages: list[tuple[Path, MessageSpec]]
    origin: dict[str, Path]  # resource spec name -> its file


def load_specs(*roots: Path) -> SpecSet:
    """Load specs from ``roots`` (default: the built-in ones); later roots override by name."""
    return compile_specs(read_specs(*roots))


def read_specs(*roots: Path) -> SpecSources:
    """Parse and check each spec file on its own (no cross-checks yet)."""
    files: dict[tuple[str, str], Path] = {}
    for root in roots or (SPEC_ROOT,):
        for kind in ("messages", "resources", "codes"):
            for path in sorted((root / kind).glob("*.yaml")):
                files[(kind, path.stem)] = path
    tables: dict[str, CodeTable] = {}
    resources: dict[str, ResourceSpec] = {}
    messages: list[tuple[Path, MessageSpec]] = []
    origin: dict[str, Path] = {}
    for (kind, _stem), path in files.items():
        if kind == "codes":
            table = _load(path, CodeTable)
            tables[table.table] = table
        elif kind == "resources":
            res = _load(path, ResourceSpec)
            resources[res.key] = res
            origin[res.key] = path
        else:
            messages.append((path, _load(path, MessageSpec)))
    return SpecSources(tables, resources, messages, origin)


def compile_specs(src: SpecSources) -> SpecSet:
    """Cross-check the models (tables, references, paths) and compile them for conversion."""
    tables, resources = src.tables, src.resources
    for key, res in resources.items():
        _check_resource(src.origin[key], res, tables)
    compiled: dict[tuple[str, str], CompiledMessage] = {}
    for path, msg in src.messages:
        built = _compile_message(path, msg, resources)
        for event in msg.events:
            if (msg.message, event) in compiled:
                raise SpecError(f"{path}:{msg.line}: events: {msg.message}^{event} "
                                "is already mapped by another message spec")
            compiled[(msg.message, event)] = built
    resolved = {name: table.resolved() for name, table in tables.items()}
    return SpecSet(compiled, resources, tables, resolved)


def _load(path: Path, model: type[M]) -> M:
    """Parse one YAML file into ``model``; any problem becomes a located ``SpecError``."""
    doc = load_file(path, SpecError, what="spec file", stamp=_carries_line)
    if not isinstance(doc.data, dict):
        raise SpecError(f"{path}:1: a spec file must be a YAML mapping")
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(doc.describe(exc.errors(include_url=False))) from None


def _carries_line(loc: Loc) -> bool:
    """The spec objects, whose mappings keep their line (``__line__``): the file itself,
    and each mapping under ``rules`` or ``id`` (not free-form data such as ``with``)."""
    return all(part in _CARRY_LINES for part in loc if isinstance(part, str))


def _check_resource(path: Path, res: ResourceSpec, tables: dict[str, CodeTable]) -> None:
    """Cross-checks a model cannot do alone: table names and clashing target paths."""
    leaves: set[str] = set()
    for i, rule in enumerate(res.rules):
        if rule.table is not None and rule.table not in tables:
            raise SpecError(f"{path}:{rule.line}: rules[{i}].table: unknown code table "
                            f"{rule.table!r}; known: {', '.join(sorted(tables))}")
        if rule.path.steps[0][0] in {"id", "resourceType"}:
            raise SpecError(f"{path}:{rule.line}: rules[{i}].path: {rule.path.text!r} is "
                            "set by the engine")
        leaves.add(rule.path.shape)
        parent = rule.path.shape.rpartition(".")[0]
        leaves.update(f"{parent}.{key}" if parent else key for key in rule.with_)
    for leaf in leaves:
        for other in leaves:
            if other.startswith(leaf + "."):
                raise SpecError(f"{path}:{res.line}: rules: path {leaf!r} is written as a "
                                f"value and also as the container of {other!r}")


def _compile_message(path: Path, msg: MessageSpec,
                     resources: dict[str, ResourceSpec]) -> CompiledMessage:
    """Resolve a message spec's resources and check its references point backwards."""
    chosen: list[ResourceSpec] = []
    for i, name in enumerate(msg.resources):
        res = resources.get(name)
        if res is None:
            raise SpecError(f"{path}:{msg.line}: resources[{i}]: no resource spec "
                            f"{name!r}; known: {', '.join(sorted(resources))}")
        built = {r.key for r in chosen}
        later = set(msg.resources[i:])
        for j, rule in enumerate(res.rules):
            ref = rule.reference
            if ref is None or ref in built:
                continue
            if ref in later:
                raise SpecError(f"{path}:{msg.line}: resources[{i}]: {name} rules[{j}] "
                                f"refers to {ref}, which must be listed before it")
            if ref not in resources:
                raise SpecError(f"{path}:{msg.line}: resources[{i}]: {name} rules[{j}] "
                                f"refers to {ref}, which no resource spec is named")
            # a spec this message does not build: the reference is simply never written
        chosen.append(res)
    reads = set(ENVELOPE_FIELDS)
    reads.update((ref.segment, ref.field) for ref in msg.ignored_fields)
    for res in chosen:
        reads.update((ref.segment, ref.field) for ref in res.id.reads())
        reads.update((ref.segment, ref.field) for ref in res.when.values())
        for rule in res.rules:
            reads.update((ref.segment, ref.field) for ref in rule.reads())
    segments = frozenset({seg for seg, _ in reads} | {r.segment for r in chosen}
                         | {c for r in chosen for c in r.children})
    by_segment = {seg: frozenset(n for s, n in reads if s == seg) for seg in segments}
    return CompiledMessage(msg, tuple(compile_resource(r) for r in chosen),
                           frozenset(reads), segments, by_segment)

