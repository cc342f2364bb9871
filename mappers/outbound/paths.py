"""Small element paths over FHIR JSON: ``name[0].given[]``, ``$patient.identifier[]``.

A path is an optional ``$variable`` (a named selection the renderer provides: ``$this``,
``$patient``, ``$results``...) and dotted steps. A step names an element; ``[n]`` takes
one item of a list, ``[]`` (or nothing) takes every item. A step that is not an element of a
Reference (``reference``, ``display``, ``identifier``, ``type``) reads through it: the
Reference is resolved in the Bundle first, so ``actor.resourceType`` is the type of the
resource the actor refers to. The step ``resolved`` resolves explicitly
(``basedOn.resolved.identifier``: the order's identifiers, not the Reference's own).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

_STEP: Final = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_]*)(?:\[(?P<index>[0-9]*)\])?")
_VARIABLE: Final = re.compile(r"\$[a-z][a-z_]*")
REFERENCE_KEYS: Final = frozenset({"reference", "display", "identifier", "type", "extension"})

RESOLVED: Final = "resolved"
Step = tuple[str, int | None]  # element name, index (None: every item)
Resolver = Callable[[dict[str, Any]], dict[str, Any] | None]


@lru_cache(maxsize=1024)
def split(path: str) -> tuple[str | None, tuple[Step, ...]]:
    """``$patient.name[0].family`` -> ("$patient", (("name", 0), ("family", None)))."""
    parts = path.split(".")
    variable = None
    if parts[0].startswith("$"):
        variable = parts.pop(0)
        if not _VARIABLE.fullmatch(variable):
            raise ValueError(f"{variable!r} is not a variable like $patient")
    steps: list[Step] = []
    for part in parts:
        m = _STEP.fullmatch(part)
        if m is None:
            raise ValueError(f"{path!r}: {part!r} is not a step like name, name[] or name[0]")
        index = m.group("index")
        steps.append((m.group("name"), int(index) if index else None))
    return variable, tuple(steps)


def check_path(path: str) -> None:
    """``ValueError`` when ``path`` is not a valid path (the spec's mistake)."""
    if not path:
        raise ValueError("a path cannot be empty")
    split(path)


def walk(values: list[Any], steps: tuple[Step, ...], resolve: Resolver) -> list[Any]:
    """Every value the steps reach from ``values`` (lists flattened, None dropped)."""
    current = [v for v in values if v is not None]
    for name, index in steps:
        found: list[Any] = []
        for item in current:
            if not isinstance(item, dict):
                continue
            if name == RESOLVED:
                target = resolve(item) if "reference" in item else None
                if target is not None:
                    found.append(target)
                continue
            if name not in item and name not in REFERENCE_KEYS and "reference" in item:
                target = resolve(item)
                if target is None:
                    continue
                item = target
            value = item.get(name)
            if value is None:
                continue
            if isinstance(value, list):
                if index is None:
                    found.extend(v for v in value if v is not None)
                elif index < len(value) and value[index] is not None:
                    found.append(value[index])
            elif index in (None, 0):
                found.append(value)
        current = found
    return current


def matches(value: Any, where: dict[str, Any], resolve: Resolver) -> bool:
    """True when each ``where`` path of ``value`` has the value given (text compared); a
    list gives the values allowed, ``""`` among them allowing the element to be absent."""
    for path, expected in where.items():
        _, steps = split(path)
        got = walk([value], steps, resolve)
        allowed = expected if isinstance(expected, list) else [expected]
        if not any(_same(g, e) for g in got for e in allowed) and not (
                not got and "" in allowed):
            return False
    return True


def _same(got: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return got is expected
    return str(got) == str(expected)
