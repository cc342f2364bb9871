"""``explain``: where each element of the Bundle came from, for ``hl7gw map --explain``.

The engine records each rule application only when asked (``Context.trace``); this module
turns that record into a report: per resource, ``element <- SEG-n.c`` lines, code table
translations under the element they fed, the HL7 v2-to-FHIR IG row each rule implements
(``IG PID[Patient]: PID-5 -> Patient.name``, from ``mappers.ig``), then the issues and the
unmapped fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mappers.conversion import _convert, default_specs
from mappers.engine.models import ResourceSpec
from mappers.engine.refs import FieldRef
from mappers.result import ConversionResult

if TYPE_CHECKING:
    from mappers.profiles import Profile

# Which component of a v2 datatype fills which element of its FHIR value (IG datatype maps).
_PARTS: dict[str, dict[str, str]] = {
    "XPN": {"family": "1", "given": "2, 3", "suffix": "4, 6", "prefix": "5", "use": "7",
            "period": "12, 13"},
    "XAD": {"line": "1, 2", "city": "3", "state": "4", "postalCode": "5", "country": "6",
            "use": "7", "type": "7", "district": "9", "period": "13, 14"},
    "XTN": {"value": "1, 4, 5-8, 12", "use": "2", "system": "3"},
    "CX": {"value": "1", "system": "4", "assigner": "4", "type": "5", "period": "7, 8"},
    "CWE": {"coding": "1-3, 4-6, 10-12", "text": "9"},
    "XCN": {"identifier": "1, 9", "display": "2-7"},
    "XCN_name": {"family": "2", "given": "3, 4", "suffix": "5, 7", "prefix": "6"},
    "XCN_identifier": {"value": "1", "system": "9"},
    "EI": {"value": "1", "system": "2-4"},
    "quantity": {"value": "1"},
    "SN": {"comparator": "1", "value": "2"},
    "ED": {"contentType": "2, 3", "data": "4, 5"},
}
for _alias, _same in (("CE", "CWE"), ("CNE", "CWE"), ("CF", "CWE")):
    _PARTS[_alias] = _PARTS[_same]


def explain(text: str, *, default_tz: str | None = None, profile: Profile | None = None
            ) -> str:
    """A readable report of one conversion: element <- source field, translations, issues.

    Shows element paths, field references and codes, never names or identifiers. With a
    ``profile``, says so and shows its translations like the code tables'.
    Raises the same ``MessageError`` as ``convert`` for a message it refuses.
    """
    trace: list[tuple[str, str, str, Any]] = []
    result = _convert(text, False, default_tz, trace, profile)
    used = f", sender profile {profile.name!r} ({profile.path})" if profile is not None else ""
    lines = [f"{result.message_type} (MSH-10 control id) -> transaction Bundle with "
             f"{len(result.bundle['entry'])} resources{used}", ""]
    specs = (profile.specs if profile is not None else default_specs()).resources
    lines += _element_lines(trace, specs)
    lines += _closing_lines(result)
    return "\n".join(lines) + "\n"


def _element_lines(trace: list[tuple[str, str, str, Any]],
                   specs: dict[str, ResourceSpec]) -> list[str]:
    out: list[str] = []
    resource = ""
    spec: ResourceSpec | None = None
    counters: dict[str, int] = {}
    pending: list[str] = []  # table translations seen before the element they feed
    for path, source, kind, value in trace:
        if path == "#":
            resource, counters, pending = source.split("/")[0], {}, []
            spec = specs.get(kind)
            name = f" ({kind})" if kind != resource else ""
            out.append(f"{source}{name}")
            continue
        if kind == "table":
            pending.append(f"      code {value}  [{source}]")
            continue
        element = f"{resource}.{_indexed(path, counters)}"
        if kind == "reference":
            out.append(f"  {element} <- reference to {value}")
            if spec is not None:
                out.extend(_ig_reference_line(spec, path, str(value), specs))
        elif kind == "constant":
            out.append(f"  {element} <- constant (spec)")
        else:
            out.append(f"  {element} <- {source} ({kind})")
            parts = _PARTS.get(kind)
            if parts and isinstance(value, dict):
                for key in value:
                    if key in parts:
                        out.append(f"    {element}.{key} <- {source}.{parts[key]}")
        out.extend(pending)
        pending = []
        if spec is not None and source:
            out.extend(_ig_line(spec, source, path))
    return out


def _ig_reference_line(spec: ResourceSpec, path: str, target: str,
                       specs: dict[str, ResourceSpec]) -> list[str]:
    """The IG row a reference implements (OBX-16 -> performer), when the IG has one."""
    from mappers.ig import cite_reference

    row = cite_reference(spec, path, target, specs)
    return [f"    {row.cite(spec.resource)}"] if row is not None else []


def _ig_line(spec: ResourceSpec, source: str, path: str) -> list[str]:
    """``    IG PID[Patient]: PID-5 -> Patient.name``: the IG row this rule implements."""
    from mappers.ig import cite  # here: ``python -m mappers.ig`` must find it unimported

    row = cite(spec, FieldRef.parse(source), path)
    return [f"    {row.cite(spec.resource)}"] if row is not None else []


def _indexed(path: str, counters: dict[str, int]) -> str:
    """``name[].family`` as ``name[0].family``, ``name[1].family``... per resource."""
    if "[]" not in path:
        return path
    head, _, tail = path.partition("[]")
    n = counters.get(head, 0)
    counters[head] = n + 1
    return f"{head}[{n}]{tail}"


def _closing_lines(result: ConversionResult) -> list[str]:
    out = ["", f"Issues ({len(result.issues)}):"]
    out += [f"  {i.severity} {i.code} at {i.location or 'message'}: {i.text}"
            for i in result.issues] or ["  none"]
    out += ["", f"Unmapped ({len(result.unmapped)}): " + (", ".join(result.unmapped) or "none")]
    return out
