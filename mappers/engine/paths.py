"""Target paths in specs (``name[].given``, ``destination[0].endpoint``) and writing to them.

A path is dotted element names; ``[]`` appends a new list item, ``[n]`` addresses item n so
several rules can fill one item. A scalar leaf keeps the first value written (so a later rule
is a fallback); a ``[]`` leaf appends every value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

APPEND: Final = -1
_STEP: Final = re.compile(r"([a-z][A-Za-z0-9]*)(?:\[(\d*)\])?")


@dataclass(frozen=True, slots=True)
class TargetPath:
    """A compiled target path: (element name, None | APPEND | index) steps."""

    text: str
    steps: tuple[tuple[str, int | None], ...]
    leaf: str = ""  # set for one-step paths ("gender", "identifier[]"): written directly
    leaf_appends: bool = False

    @classmethod
    def compile(cls, text: str) -> TargetPath:
        """Parse a path; ``ValueError`` names what is wrong with it."""
        if not isinstance(text, str) or not text:
            raise ValueError("a path must be a non-empty string like 'name[].family'")
        steps: list[tuple[str, int | None]] = []
        for part in text.split("."):
            m = _STEP.fullmatch(part)
            if m is None:
                raise ValueError(f"bad path step {part!r} in {text!r} "
                                 "(expected element, element[] or element[n])")
            name, index = m.groups()
            steps.append((name, None if index is None else APPEND if index == "" else int(index)))
        simple = len(steps) == 1 and steps[0][1] in (None, APPEND)
        return cls(text, tuple(steps), steps[0][0] if simple else "",
                   simple and steps[0][1] == APPEND)

    @property
    def shape(self) -> str:
        """The path without indexes (``name.family``), to compare paths for conflicts."""
        return ".".join(name for name, _ in self.steps)

    @property
    def appends(self) -> bool:
        """True when the leaf is ``[]``: every repetition becomes a new item."""
        return self.steps[-1][1] == APPEND


def put(target: dict[str, Any], path: TargetPath, value: Any,
        siblings: dict[str, Any] | None = None) -> bool:
    """Write ``value`` at ``path``; add ``siblings`` next to it. False if the leaf was taken."""
    leaf = path.leaf
    if leaf and siblings is None:  # the common one-step path
        if path.leaf_appends:
            existing: list[Any] | None = target.get(leaf)
            if existing is None:
                target[leaf] = [value]
            else:
                existing.append(value)
            return True
        if target.get(leaf) is not None:
            return False
        target[leaf] = value
        return True
    obj = target
    for name, index in path.steps[:-1]:
        if index is None:
            obj = obj.setdefault(name, {})
        else:
            items: list[Any] = obj.setdefault(name, [])
            if index == APPEND:
                items.append({})
                obj = items[-1]
            else:
                while len(items) <= index:
                    items.append({})
                obj = items[index]
    name, index = path.steps[-1]
    if index is None:
        if obj.get(name) is not None:
            return False
        obj[name] = value
    elif index == APPEND:
        obj.setdefault(name, []).append(value)
    else:
        items = obj.setdefault(name, [])
        while len(items) <= index:
            items.append(None)
        if items[index] is not None:
            return False
        items[index] = value
    if siblings:
        for key, const in siblings.items():
            if key not in obj:
                obj[key] = thaw(const)
    return True


def taken(target: dict[str, Any], path: TargetPath) -> bool:
    """True when ``path`` is a single-valued leaf that already holds a value.

    Lets the engine skip a fallback rule without computing a value it would throw away.
    """
    node: Any = target
    for name, index in path.steps:
        if index == APPEND or not isinstance(node, dict):
            return False
        node = node.get(name)
        if index is not None:
            if not isinstance(node, list) or index >= len(node):
                return False
            node = node[index]
        if node is None:
            return False
    return True


def freeze(value: Any) -> Any:
    """A private deep copy of a constant or remembered value, handed out only via ``thaw``."""
    return copy_json(value)


def thaw(value: Any) -> Any:
    """A fresh copy of a frozen value, so no two outputs share (and mutate) one object."""
    return copy_json(value)


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars).

    Compiled, this is several times cheaper than a JSON round trip or ``copy.deepcopy``
    for the small CodeableConcepts and References the engine copies per rule. Scalars
    (most leaves) are taken as they are, without a call.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key] = copy_json(item) if isinstance(item, dict) or isinstance(item, list) \
                else item
        return out
    if isinstance(value, list):
        return [copy_json(item) if isinstance(item, dict) or isinstance(item, list) else item
                for item in value]
    return value


def compact(element: dict[str, Any]) -> dict[str, Any] | None:
    """``element`` without None, "" , [] or {} values; None when nothing is left.

    Datatype functions build their output through this, which is how the Bundle never holds
    the empty values FHIR forbids (checked over every output in the tests).
    """
    # ``v or v is False or v == 0`` keeps False and 0 and drops None, "", [] and {}
    # without building an empty list or dict to compare with.
    out = {k: v for k, v in element.items() if v or v is False or v == 0}
    return out or None
