"""``to_v2``: a FHIR resource or Bundle -> one HL7 v2 message, driven by the outbound specs.

The message spec is chosen by the resources present (its ``focus`` type, lowest
``precedence`` first), the trigger event by the spec's ``events`` conditions (or the
caller's ``message_type``). MSH is written here; every other segment comes from the
spec's items: each item is repeated for each resource its ``from`` finds, and a segment
spec's rules fill the fields through the named writers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from mappers.errors import OutboundError
from mappers.outbound.bundle import BundleIndex, encounter_of, patient_of
from mappers.outbound.datatypes import WRITERS, Writing
from mappers.outbound.encoding import (
    FieldValue,
    escape,
    escape_value,
    join_field,
    join_msh,
    join_segment,
)
from mappers.outbound.loading import (
    LoadedMessage,
    OutboundProfile,
    OutboundSpecs,
    ZField,
    outbound_specs,
)
from mappers.outbound.models import Condition, EventSpec, Item, SegmentSpec
from mappers.outbound.paths import matches, split, walk
from mappers.outbound.tables import reverse_tables, with_overrides
from mappers.outbound.times import now_dtm

VERSIONS: Final = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8",
                   "2.8.1", "2.8.2")
CODING_SYSTEMS_TABLE: Final = "0396"


@dataclass(frozen=True)
class Rendered:
    """One rendered HL7 v2 message and what the delivery needs to know about it."""

    message: bytes  # segments ended by b"\r", UTF-8
    message_type: str  # MSH-9.1^MSH-9.2, e.g. "ORU^R01"
    control_id: str  # MSH-10 as written
    patient_key: str | None  # the Patient resource id the message is about, or None


def control_id_for(event_id: str) -> str:
    """A deterministic MSH-10 (at most 20 characters, A-Z and 2-7) from a CloudEvent id:
    the first 20 characters of the base32 SHA-256 of the id (100 bits: no collisions in
    practice)."""
    digest = hashlib.sha256(event_id.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii")[:20]


@cache
def _system_names() -> dict[str, str]:
    """FHIR code system URI -> its v2 name, from the inbound table 0396 read backwards
    (where 0396 names a system several ways, the usual name is written)."""
    table = reverse_tables()[CODING_SYSTEMS_TABLE]
    names: dict[str, str] = {}
    for uri, name in table.codes.items():
        names.setdefault(uri, name)
    names.update({"http://hl7.org/fhir/sid/icd-10-cm": "I10C",
                  "http://hl7.org/fhir/sid/icd-9-cm": "I9C"})
    return names


def _version(version: str) -> tuple[int, ...]:
    if version not in VERSIONS:
        raise OutboundError(f"HL7 version {version!r} is not supported for outbound "
                            f"messages; use one of {', '.join(VERSIONS)}")
    return tuple(int(p) for p in version.split("."))


@dataclass
class _Choice:
    loaded: LoadedMessage
    focus: list[dict[str, Any]]
    event: EventSpec


def _choose(index: BundleIndex, specs: OutboundSpecs, message_type: str | None,
            version: tuple[int, ...]) -> _Choice:
    """The message spec, focus resources and event for this input (``OutboundError`` if
    nothing fits, naming what the input holds and what could be rendered)."""
    wanted = message_type.split("^")[:2] if message_type else None
    for loaded in specs.messages:
        spec = loaded.spec
        focus = index.of_type(spec.focus)
        if not focus:
            continue
        if wanted is not None:
            if spec.message != wanted[0]:
                continue
            for event in spec.events:
                if len(wanted) > 1 and event.event == wanted[1]:
                    return _Choice(loaded, focus, event)
            continue
        probe = _Scope(focus[0], None, 1)
        for event in spec.events:
            if event.default and _all(event.when, probe, _Evaluator(index, version, focus)):
                return _Choice(loaded, focus, event)
    types = sorted({str(r.get("resourceType")) for r in index.resources})
    if wanted is not None:
        raise OutboundError(f"cannot render {message_type} from {', '.join(types) or 'nothing'}"
                            f"; renderable here: {', '.join(_offered(index, specs)) or 'none'}")
    raise OutboundError(f"no outbound message for {', '.join(types) or 'an empty input'}: "
                        "give a DiagnosticReport, Observation, RiskAssessment, "
                        "DocumentReference, Patient, Appointment or Immunization")


def _offered(index: BundleIndex, specs: OutboundSpecs) -> list[str]:
    return [f"{m.spec.message}^{e.event}" for m in specs.messages
            if index.of_type(m.spec.focus) for e in m.spec.events]


def message_types_for(resource: dict[str, Any]) -> list[str]:
    """The v2 message type ``to_v2`` would produce for this resource or Bundle ([] if none)."""
    index = BundleIndex(resource)
    try:
        choice = _choose(index, outbound_specs(), None, (2, 5, 1))
    except OutboundError:
        return []
    return [f"{choice.loaded.spec.message}^{choice.event.event}"]


@dataclass
class _Scope:
    this: Any
    parent: _Scope | None
    index: int


class _Evaluator:
    """Paths and conditions over the input, with the ``$`` variables of one rendering."""

    def __init__(self, index: BundleIndex, version: tuple[int, ...],
                 focus: list[dict[str, Any]], now: str = "", event: str = "") -> None:
        self.index = index
        self.version = version
        self.focus = focus
        self.now = now
        self.event = event
        self._patient: dict[str, Any] | None = None
        self._patient_done = False

    @property
    def patient(self) -> dict[str, Any] | None:
        if not self._patient_done:
            self._patient = patient_of(self.index, self.focus[0]) if self.focus else None
            self._patient_done = True
        return self._patient

    def variable(self, name: str, scope: _Scope) -> list[Any]:
        if name == "$this":
            return [scope.this]
        if name == "$parent":
            return [scope.parent.this] if scope.parent is not None else []
        if name == "$focus":
            return list(self.focus)
        if name == "$patient":
            return [self.patient] if self.patient is not None else []
        if name == "$encounter":
            found = encounter_of(self.index, self.focus[0]) if self.focus else None
            return [found] if found is not None else []
        if name == "$results":
            return self._results(scope.this)
        if name == "$observations":
            seen: set[int] = set()
            return [m for obs in self.index.of_type("Observation")
                    for m in self.index.members(obs, seen)]
        if name == "$index":
            return [scope.index]
        if name == "$now":
            return [self.now]
        if name == "$event":
            return [self.event]
        raise OutboundError(f"unknown variable {name} in an outbound spec")

    def _results(self, this: Any) -> list[Any]:
        if not isinstance(this, dict):
            return []
        seen: set[int] = set()
        out: list[Any] = []
        for ref in this.get("result") or []:
            found = self.index.resolve(ref) if isinstance(ref, dict) else None
            if found is not None and found.get("resourceType") == "Observation":
                out.extend(self.index.members(found, seen))
        return out

    def values(self, path: str, scope: _Scope) -> list[Any]:
        variable, steps = split(path)
        start = self.variable(variable, scope) if variable else [scope.this]
        return walk(start, steps, self.index.resolve)

    def holds(self, cond: Condition, scope: _Scope) -> bool:
        if cond.any is not None:
            return any(self.holds(c, scope) for c in cond.any)
        if cond.not_ is not None:
            return not self.holds(cond.not_, scope)
        if cond.version_at_least is not None:
            return self.version >= tuple(int(p) for p in cond.version_at_least.split("."))
        if cond.version_below is not None:
            return self.version < tuple(int(p) for p in cond.version_below.split("."))
        assert cond.path is not None
        got = self.values(cond.path, scope)
        if cond.present is not None:
            return bool(got) == cond.present
        if cond.equals is not None:
            return any(str(g) == str(cond.equals) for g in got)
        if cond.in_ is not None:
            return any(str(g) in cond.in_ for g in got)
        if cond.prefix is not None:
            return any(isinstance(g, str) and g.startswith(cond.prefix) for g in got)
        if cond.gt is not None:
            return any(_greater(g, cond.gt) for g in got)
        return False


def _greater(value: Any, limit: float) -> bool:
    try:
        return float(value) > limit
    except (TypeError, ValueError):
        return False


def _all(conditions: list[Condition], scope: _Scope, ev: _Evaluator) -> bool:
    return all(ev.holds(c, scope) for c in conditions)


@dataclass
class _Output:
    """The segments written so far, the set id counters, and the Z-segments done."""

    segments: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    z_done: set[int] = field(default_factory=set)


class _Renderer:
    def __init__(self, specs: OutboundSpecs, ev: _Evaluator, writing: Writing,
                 profile: OutboundProfile | None) -> None:
        self.specs = specs
        self.ev = ev
        self.writing = writing
        self.profile = profile
        self.out = _Output()
        self.resets = {spec.segment: set(spec.set_id.reset_after)
                       for spec in specs.segments.values() if spec.set_id is not None}

    def items(self, items: list[Item], scope: _Scope) -> None:
        for item in items:
            if item.from_ == "$this":  # the same scope: $parent and $index stay
                found = [scope.this] if not item.where or matches(
                    scope.this, item.where, self.ev.index.resolve) else []
                chosen = [scope] if found and _all(item.when, scope, self.ev) else []
            else:
                chosen = self._found(item, scope)
            if item.first:
                chosen = chosen[:1]
            if not chosen and item.required:
                raise OutboundError(item.required)
            for inner in chosen:
                if item.segment is not None:
                    self.segment(self.specs.segments[item.segment], inner)
                else:
                    assert item.body is not None
                    self.items(item.body, inner)
                if item.from_ != "$this":
                    self.z_segments(inner.this)

    def _found(self, item: Item, scope: _Scope) -> list[_Scope]:
        found = [f for f in self.ev.index.resolve_all(self.ev.values(item.from_, scope))
                 if not item.where or matches(f, item.where, self.ev.index.resolve)]
        chosen: list[_Scope] = []
        for res in found:
            inner = _Scope(res, scope, len(chosen) + 1)
            if _all(item.when, inner, self.ev):
                chosen.append(inner)
        return chosen

    def segment(self, spec: SegmentSpec, scope: _Scope) -> None:
        fields: dict[int, FieldValue] = {}
        for rule in spec.rules:
            _, number, component = rule.target
            if number in fields and (component is None or _component_set(fields[number],
                                                                         component)):
                continue
            if not _all(rule.when, scope, self.ev):
                continue
            value = self._rule_value(rule.value, rule.path, rule.where, rule.type, rule.table,
                                     rule.args, scope)
            if value is None:
                continue
            if component is None:
                fields[number] = value
            else:
                _set_component(fields.setdefault(number, [[]]), component, value)
        if not fields:
            return
        self.emit(spec.segment, spec.set_id.field if spec.set_id else None, fields)

    def _rule_value(self, constant: Any, path: str | None, where: dict[str, Any],
                    writer_name: str, table: str | None, args: dict[str, Any],
                    scope: _Scope) -> FieldValue | None:
        info = WRITERS[writer_name]
        if constant is not None:
            comps = constant if isinstance(constant, list) else [constant]
            return escape_value([[[str(c)] for c in comps]], formatted=info.formatted)
        assert path is not None
        values = self.ev.values(path, scope)
        if where:
            values = [v for v in values if matches(v, where, self.ev.index.resolve)]
        if "[]" not in path:
            values = values[:1]
        reps: FieldValue = []
        for value in values:
            written = info.fn(value, self.writing, args, table)
            if written:
                reps.extend(escape_value(written, formatted=info.formatted))
        return reps or None

    def emit(self, segment: str, set_id: int | None, fields: dict[int, FieldValue]) -> None:
        for other, resets in self.resets.items():
            if other != segment and (segment in resets or "*" in resets):
                self.out.counters[other] = 0
        if set_id is not None:
            n = self.out.counters.get(segment, 0) + 1
            self.out.counters[segment] = n
            fields = {**fields, set_id: [[[str(n)]]]}
        self.out.segments.append(join_segment(
            segment, {n: join_field(v) for n, v in fields.items()}))

    def z_segments(self, resource: Any) -> None:
        """The destination profile's Z-segments for a resource, right after its segments."""
        if self.profile is None or not self.profile.fields or not isinstance(resource, dict) \
                or id(resource) in self.out.z_done:
            return
        self.out.z_done.add(id(resource))
        kind = resource.get("resourceType")
        by_segment: dict[str, dict[int, FieldValue]] = {}
        for z in self.profile.fields:
            if z.resource != kind:
                continue
            value = self._z_value(z, resource)
            if value is not None:
                by_segment.setdefault(z.segment, {}).setdefault(z.field, value)
        for segment, fields in by_segment.items():
            self.emit(segment, None, fields)

    def _z_value(self, z: ZField, resource: dict[str, Any]) -> FieldValue | None:
        scope = _Scope(resource, None, 1)
        if z.path is not None:
            return self._rule_value(None, z.path, {}, z.writer, z.table, {}, scope)
        for ext in resource.get("extension") or []:
            if not isinstance(ext, dict) or ext.get("url") != z.extension:
                continue
            key = z.value or next((k for k in ext if k.startswith("value")), None)
            if key is None or key not in ext:
                return None
            info = WRITERS[z.writer]
            written = info.fn(ext[key], self.writing, {}, z.table)
            return escape_value(written, formatted=info.formatted) if written else None
        return None


def _component_set(value: FieldValue, component: int) -> bool:
    rep = value[0] if value else []
    return len(rep) >= component and any(rep[component - 1])


def _set_component(value: FieldValue, component: int, written: FieldValue) -> None:
    rep = value[0]
    while len(rep) < component:
        rep.append([""])
    first = written[0] if written else []
    rep[component - 1] = [sub for comp in first for sub in comp[:1]] or [""]


def to_v2(resource: dict[str, Any], *, control_id: str, version: str = "2.5.1",
          profile: OutboundProfile | None = None, sending_application: str = "HL7GW",
          sending_facility: str = "", receiving_application: str = "",
          receiving_facility: str = "", timestamp: dt.datetime | None = None,
          message_type: str | None = None) -> Rendered:
    """Render a FHIR R4 resource or Bundle as one HL7 v2 message.

    ``OutboundError`` names what is missing or unsupported (never a value).
    """
    if not isinstance(resource, dict) or not resource.get("resourceType"):
        raise OutboundError("the input is not a FHIR resource (no resourceType)")
    if not control_id or len(control_id) > 20:
        raise OutboundError("control_id must be 1 to 20 characters (MSH-10); use "
                            "control_id_for(event id)")
    numbers = _version(version)
    specs = outbound_specs()
    index = BundleIndex(resource)
    choice = _choose(index, specs, message_type, numbers)
    zone = profile.timezone if profile is not None else None
    stamp = timestamp or dt.datetime.now(dt.UTC)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    ev = _Evaluator(index, numbers, choice.focus, stamp.isoformat(timespec="seconds"),
                    choice.event.event)
    tables = with_overrides(reverse_tables(), profile.codes if profile else {})
    writing = Writing(numbers, tables, _system_names(),
                      profile.authorities if profile else {},
                      profile.local_codes if profile else {}, zone, index.resolve)
    renderer = _Renderer(specs, ev, writing, profile)
    renderer.items(choice.loaded.spec.body, _Scope(choice.focus[0], None, 1))
    spec = choice.loaded.spec
    msh_type = [spec.message, choice.event.event]
    if numbers >= (2, 3, 1):
        msh_type.append(choice.event.structure)
    msh = {3: escape(sending_application), 4: escape(sending_facility),
           5: escape(receiving_application), 6: escape(receiving_facility),
           7: now_dtm(stamp, zone), 9: "^".join(msh_type), 10: escape(control_id),
           11: "P", 12: version}
    if numbers >= (2, 5):
        msh[18] = "UNICODE UTF-8"
    text = "\r".join([join_msh(msh), *renderer.out.segments]) + "\r"
    patient = ev.patient
    key = patient.get("id") if patient is not None else None
    return Rendered(text.encode("utf-8"), f"{spec.message}^{choice.event.event}", control_id,
                    str(key) if key else None)
