"""Our resource specs against the HL7 v2-to-FHIR IG segment maps (``specs/ig/segments``).

For each resource spec, the IG segment maps it implements are those its ``ig:`` key names,
else ``SEGMENT[Resource]`` when the IG has that map (``PID[Patient]``, ``OBX[Observation]``;
a Practitioner built from OBX-16 has none), and the same for every other segment whose
fields its rules map (the Patient spec maps PD1-3 and PD1-4: ``PD1[Patient]``). Every IG
row that maps a field to a FHIR attribute is then, for that spec, one of:

* **mapped**: a rule reads the field (``field``, or one of its ``extra`` fields; a component
  such as ``PID-3.4`` counts for ``PID-3``) and writes the same top-level attribute
  (``name[]`` and ``name[1]`` are both ``name``; choice elements compare by their base,
  ``valueQuantity`` and ``valueString`` are both ``value[x]``). A ``reference:`` rule to
  another spec maps the fields that spec reads (OBX-16 -> ``performer(Practitioner)``);
  a constant written ``when:`` a field holds maps that field (PV1-45 ->
  ``status="finished"``). A ``$this`` row (the IG maps the field onto the resource as a
  whole, ``SCH-11`` through the TQ datatype map) is mapped when the spec reads the field;
* **listed**: the spec's ``not_mapped`` names the field, with the reason;
* **missing**: neither, which ``tests/unit/mappers/test_ig_conformance.py`` refuses.

A ``not_mapped`` entry that excuses no row (every IG row of the field is mapped, or the IG
maps of the spec have no such field) is **stale** and refused too.

Rows count when column 9 (FHIR Attribute) names an attribute, or, when it is empty, column
10 proposes an extension the IG does not define yet (``extension??-identityUnknown``) or says
``local implementation`` (a realm's extension, as for PID-10 race): both are the attribute
``extension``. Rows that name no attribute (comments, the whole segment) do not count.

``python -m mappers.ig`` prints, per spec and IG map, how many rows are mapped and listed.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from mappers.engine.models import IG_SEGMENTS, ResourceSpec
from mappers.engine.refs import FieldRef

_FIELD = re.compile(r"([A-Z][A-Z0-9]{2})-(\d+)")
_CUT = re.compile(r"[.\[(=?\s-]")
_INDEX = re.compile(r"\[(?:\d+|each)\]")
# FHIR R4 choice elements ([x]) that the IG segment maps and our specs write
_CHOICES = ("value", "effective", "onset", "abatement", "deceased", "multipleBirth",
            "occurrence", "performed", "medication", "born", "timing", "asNeeded", "allowed",
            "fastingStatus", "collected", "product", "reported", "serviced", "scheduled",
            "quantity")
_TYPES = frozenset(name.lower() for name in (  # (the IG spells some of them TIming, Samped)
    "Boolean", "Integer", "String", "DateTime", "Date", "Time", "Instant", "Decimal", "Uri",
    "Url", "Code", "Period", "Quantity", "CodeableConcept", "Coding", "Reference", "Range",
    "Ratio", "SampledData", "SampedData", "Attachment", "Age", "Duration", "Identifier",
    "Address", "ContactPoint", "HumanName", "Timing", "Money", "PositiveInt", "UnsignedInt",
    "Markdown", "Annotation", "Canonical", "CodeableReference"))
_PROPOSED = "extension"  # what a proposed extension or "local implementation" row targets


@dataclass(frozen=True, slots=True)
class IgRow:
    """One row of an IG segment map that maps a field to a FHIR attribute."""

    map: str  # PID[Patient]
    line: int  # the CSV's line, for a reader who opens the file
    segment: str
    number: int
    attribute: str  # as the IG writes it: name[1], extension[1].url, performer[1](Practitioner)
    condition: str  # column 6, e.g. IF PID-29 NOT VALUED

    @property
    def field(self) -> str:
        """``PID-5``."""
        return f"{self.segment}-{self.number}"

    @property
    def top(self) -> str:
        """The attribute's normalised top-level element (``name``, ``value[x]``)."""
        return top_level(self.attribute)

    def cite(self, resource: str) -> str:
        """``IG PID[Patient]: PID-5 -> Patient.name``, for ``hl7gw map --explain``."""
        return f"IG {self.map}: {self.field} -> {resource}.{_INDEX.sub('', self.attribute)}"


@dataclass(slots=True)
class Conformance:
    """One spec against its IG maps: each row mapped, listed or missing; stale entries."""

    spec: ResourceSpec
    maps: list[str]
    mapped: list[IgRow] = field(default_factory=list)
    listed: list[IgRow] = field(default_factory=list)
    missing: list[IgRow] = field(default_factory=list)
    stale: list[tuple[str, str]] = field(default_factory=list)  # (field, why it is stale)

    def counts(self, map_name: str) -> tuple[int, int, int]:
        """(mapped, listed, missing) rows of one of the spec's IG maps."""
        return tuple(sum(r.map == map_name for r in rows)  # type: ignore[return-value]
                     for rows in (self.mapped, self.listed, self.missing))


def top_level(path: str) -> str:
    """The top-level element of a FHIR path, without index or type: ``name[1].family`` and
    ``name[]`` are ``name``; a choice element is its base: ``valueQuantity`` is ``value[x]``;
    a proposed extension (``extension??-x``) or a local one is ``extension``."""
    text = path.strip()
    if text == "local implementation":
        return _PROPOSED
    for prefix in ("$this",):
        if text.startswith(prefix):
            return prefix
    head = _CUT.split(text, maxsplit=1)[0]
    if head in _CHOICES:  # medication(Medication.code): medication[x] as a Reference
        return f"{head}[x]"
    for base in _CHOICES:
        if head.startswith(base) and head[len(base):].lower() in _TYPES:
            return f"{base}[x]"
    return head


@cache
def read_map(name: str) -> tuple[IgRow, ...]:
    """The rows of one vendored IG segment map (``PID[Patient]``) that name an attribute."""
    path = IG_SEGMENTS / f"{name}.csv"
    rows: list[IgRow] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        records = [(reader.line_num, rec) for rec in reader]  # line where each record ends
    for n, (_end, rec) in enumerate(records):
        here = records[n - 1][0] + 1 if n else 1
        if n < 2 or len(rec) < 11:
            continue  # the two header rows
        m = _FIELD.fullmatch(rec[1].strip())
        attribute = rec[9].strip() or rec[10].strip()
        if m is None or not attribute:
            continue
        rows.append(IgRow(name, here, m.group(1), int(m.group(2)), attribute, rec[6].strip()))
    return tuple(rows)


def available_maps() -> list[str]:
    """Every vendored IG segment map name, sorted."""
    return sorted(p.stem for p in IG_SEGMENTS.glob("*.csv"))


def maps_for(spec: ResourceSpec) -> list[str]:
    """The IG maps ``spec`` implements: its ``ig:`` list; else ``SEG[Resource]`` for its own
    segment and for each other segment whose fields its rules map (PD1-4 in the Patient
    spec: ``PD1[Patient]``), when the IG has that map."""
    if spec.ig is not None:
        return list(spec.ig)
    others = sorted({ref.segment for rule in spec.rules for ref in (rule.field, *rule.extra)
                     if ref is not None and ref.segment != spec.segment})
    names = [f"{seg}[{spec.resource}]" for seg in (spec.segment, *others)]
    return [name for name in names if (IG_SEGMENTS / f"{name}.csv").is_file()]


def _reads(spec: ResourceSpec) -> list[FieldRef]:
    """Every field a spec reads: its rules' fields and extras, its id and its ``when``."""
    refs = [r for rule in spec.rules for r in (rule.field, *rule.extra) if r is not None]
    return [*refs, *spec.id.reads(), *spec.when.values()]


def _targets(spec: ResourceSpec, specs: Mapping[str, ResourceSpec]
             ) -> dict[tuple[str, int], set[str]]:
    """(segment, field) -> the top-level elements our rules write from it.

    A ``reference:`` to another spec (``performer[]`` to the Practitioner made of OBX-16)
    writes what that spec reads: the IG's ``performer(Practitioner)`` row for OBX-16, or
    ``basedOn(ServiceRequest)`` for ORC-2, is the reference. ``$this`` (the IG maps the
    field onto the resource as a whole) is every field the spec reads.
    """
    out: dict[tuple[str, int], set[str]] = {}
    for rule in spec.rules:
        refs: list[FieldRef] = [r for r in (rule.field, *rule.extra) if r is not None]
        if rule.value is not None:  # a constant written because of a field: the IG's
            refs += rule.when.values()  # PV1-45 -> status="finished"
        other = specs.get(rule.reference) if rule.reference is not None else None
        if other is not None and other is not spec:
            refs += _reads(other)
        for ref in refs:
            out.setdefault((ref.segment, ref.field), set()).add(top_level(rule.path.text))
    for ref in _reads(spec):
        out.setdefault((ref.segment, ref.field), set()).add("$this")
    return out


def check_spec(spec: ResourceSpec, specs: Mapping[str, ResourceSpec] | None = None
               ) -> Conformance:
    """Sort each IG row of the spec's maps into mapped / listed / missing; find stale
    ``not_mapped`` entries. ``specs`` (by name) resolves the spec's references."""
    maps = maps_for(spec)
    result = Conformance(spec, maps)
    targets = _targets(spec, specs or {})
    listed = {(ref.segment, ref.field) for ref in spec.not_mapped}
    excused: set[tuple[str, int]] = set()
    for name in maps:
        for row in read_map(name):
            key = (row.segment, row.number)
            if row.top in targets.get(key, ()):
                result.mapped.append(row)
            elif key in listed:
                result.listed.append(row)
                excused.add(key)
            else:
                result.missing.append(row)
    for ref in spec.not_mapped:
        if (ref.segment, ref.field) in excused:
            continue
        fielded = [r for name in maps for r in read_map(name)
                   if (r.segment, r.number) == (ref.segment, ref.field)]
        why = ("every IG row of it is mapped by a rule" if fielded else
               f"no IG row of {', '.join(maps) or 'any IG map (the spec has none)'} names it")
        result.stale.append((ref.text, why))
    return result


def cite(spec: ResourceSpec, ref: FieldRef, path: str) -> IgRow | None:
    """The IG row a rule implements: same field, same top-level element; among several,
    the one whose attribute (indices dropped) shares the longest start with ``path``."""
    names = maps_for(spec)
    own = f"{ref.segment}[{spec.resource}]"
    if own not in names and (IG_SEGMENTS / f"{own}.csv").is_file():
        names.append(own)  # a field of another segment, say PD1-4 in the Patient spec
    top = top_level(path)
    plain = _INDEX.sub("", path.replace("[]", ""))
    best: IgRow | None = None
    best_len = -1
    for name in names:
        for row in read_map(name):
            if (row.segment, row.number) != (ref.segment, ref.field) or row.top != top:
                continue
            shared = _common_prefix(_INDEX.sub("", row.attribute), plain)
            if shared > best_len:
                best, best_len = row, shared
    return best


def cite_reference(spec: ResourceSpec, path: str, target: str,
                   specs: Mapping[str, ResourceSpec]) -> IgRow | None:
    """The IG row a ``reference:`` rule implements: ``performer[]`` to ``Practitioner/..``
    built from OBX-16 is the IG's ``OBX-16 -> performer(Practitioner)``. The referenced
    spec is the one this rule names for ``path`` whose resource type ``target`` has."""
    kind = target.split("/", 1)[0]
    for rule in spec.rules:
        other = specs.get(rule.reference) if rule.reference is not None else None
        if other is None or other is spec or rule.path.text != path or other.resource != kind:
            continue
        for ref in _reads(other):
            row = cite(spec, ref, path)
            if row is not None:
                return row
    return None


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def coverage(specs: Iterable[tuple[Path, ResourceSpec]]) -> list[tuple[str, str, int, int, int]]:
    """(IG map, spec file, mapped, listed, missing) per spec and IG map it implements."""
    out = []
    chosen = list(specs)
    by_name = {spec.key: spec for _, spec in chosen}
    for path, spec in chosen:
        result = check_spec(spec, by_name)
        for name in result.maps:
            out.append((name, path.name, *result.counts(name)))
    return sorted(out)


def coverage_table(specs: Iterable[tuple[Path, ResourceSpec]]) -> str:
    """The coverage as a Markdown table with a total row."""
    rows = coverage(specs)
    lines = ["| IG segment map | spec | IG rows | mapped | listed with a reason | missing |",
             "|---|---|---:|---:|---:|---:|"]
    totals = [0, 0, 0]
    for name, spec, mapped, listed, missing in rows:
        lines.append(f"| {name} | {spec} | {mapped + listed + missing} | {mapped} | {listed} "
                     f"| {missing} |")
        totals = [totals[0] + mapped, totals[1] + listed, totals[2] + missing]
    lines.append(f"| **total** | {len(rows)} maps | {sum(totals)} | {totals[0]} | {totals[1]} "
                 f"| {totals[2]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the coverage table of the built-in specs (or the spec roots given)."""
    from mappers.engine.loader import read_specs

    roots = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    src = read_specs(*roots)
    specs = [(src.origin[key], spec) for key, spec in src.resources.items()]
    print(coverage_table(specs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
