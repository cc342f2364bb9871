"""What changed between two FHIR Bundles, element by element.

Used where an interface engineer compares mappings: the console's diff (the Bundle as
first published against the one the current profiles make) and ``hl7gw profiles try``
(the current profiles against a changed one). Both want the same answer: which elements
of which resources were added, removed or changed.

Entries are matched by ``resourceType/id`` (the gateway's ids are stable across
mappings, see DESIGN.md), so a resource that moved within the Bundle is not a change;
entries without an id fall back to their ``fullUrl``, then to their position. Inside a
resource, objects are compared key by key and lists position by position, which is how
FHIR orders repeating elements (``name[0]`` is the first name). A path reads
``Patient/123.name[0].family``; ``element_of`` drops the resource id and the indexes
(``Patient.name.family``), to count changes across many messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ChangeKind = Literal["added", "removed", "changed"]

_INDEX = re.compile(r"\[\d+\]")


@dataclass(frozen=True)
class Change:
    """One element that differs; ``before`` is None when added, ``after`` when removed."""

    path: str
    kind: ChangeKind
    before: Any
    after: Any


def diff_bundles(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """Every element that differs between two Bundles (or two single resources).

    Bundle-level elements other than ``entry`` (``id``, ``timestamp``, ``type``...) are
    compared under the path ``Bundle``; each entry's resource under its own key.
    """
    changes: list[Change] = []
    if before.get("resourceType") != "Bundle" or after.get("resourceType") != "Bundle":
        changes.extend(_walk(_key(before, 0), before, after))
        return changes
    head_before = {k: v for k, v in before.items() if k != "entry"}
    head_after = {k: v for k, v in after.items() if k != "entry"}
    changes.extend(_walk("Bundle", head_before, head_after))
    old = _entries(before.get("entry"))
    new = _entries(after.get("entry"))
    for key, resource in old.items():
        if key not in new:
            changes.append(Change(key, "removed", resource, None))
        else:
            changes.extend(_walk(key, resource, new[key]))
    changes.extend(Change(key, "added", None, resource)
                   for key, resource in new.items() if key not in old)
    return changes


def element_of(path: str) -> str:
    """``Patient/123.name[0].family`` -> ``Patient.name.family`` (for counting)."""
    head, dot, rest = path.partition(".")
    resource_type = head.split("/", 1)[0]
    return resource_type + dot + _INDEX.sub("", rest)


def _entries(entries: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        return out
    for position, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            continue
        resource = entry.get("resource")
        if isinstance(resource, Mapping):
            key = _key(resource, position, entry.get("fullUrl"))
            body: Any = resource
        else:
            key, body = f"entry[{position}]", entry
        while key in out:  # two entries with the same id: keep both, by position
            key = f"{key}#{position}"
        out[key] = body
    return out


def _key(resource: Mapping[str, Any], position: int, full_url: Any = None) -> str:
    kind = str(resource.get("resourceType") or "entry")
    if resource.get("id"):
        return f"{kind}/{resource['id']}"
    if isinstance(full_url, str) and full_url:
        return f"{kind}/{full_url}"
    return f"{kind}[{position}]"


def _walk(path: str, before: Any, after: Any) -> Iterator[Change]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for name in before:
            child = f"{path}.{name}"
            if name not in after:
                yield Change(child, "removed", before[name], None)
            else:
                yield from _walk(child, before[name], after[name])
        for name in after:
            if name not in before:
                yield Change(f"{path}.{name}", "added", None, after[name])
        return
    if _is_list(before) and _is_list(after):
        for index in range(max(len(before), len(after))):
            child = f"{path}[{index}]"
            if index >= len(after):
                yield Change(child, "removed", before[index], None)
            elif index >= len(before):
                yield Change(child, "added", None, after[index])
            else:
                yield from _walk(child, before[index], after[index])
        return
    if before != after or type(before) is not type(after):
        yield Change(path, "changed", before, after)


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)
