"""The Bundle a message was published as, next to the one the current profiles make.

After a profile change an interface engineer wants to see, for one message, what the
change does to its FHIR: the published record is read back from Kafka (the row keeps its
topic, partition and offset; ``kafka_read``), the message is mapped again with the live
profiles (``Console.map_row``), and ``gateway.bundle_diff`` names every element that
differs. Both Bundles are laid out as JSON lines, each line carrying the element path it
shows, so the page can highlight exactly the changed elements side by side.

The row keeps where it was first published apart from its latest publication (a replay
moves only the latter), so "published" means the Bundle consumers received first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from connectors.errors import InvalidEvent
from connectors.events import Event, is_json_media_type
from gateway.bundle_diff import Change, diff_bundles, element_of
from gateway.console.core import Console
from gateway.console.kafka_read import read_record
from gateway.errors import BrokerUnavailable

State = Literal["ok", "unpublished", "gone", "not-a-bundle", "kafka-down", "unmappable"]
Mark = Literal["", "changed", "added", "removed"]


@dataclass(frozen=True)
class Line:
    """One line of a pretty-printed Bundle and how the diff marks it."""

    text: str
    mark: Mark = ""


@dataclass
class DiffResult:
    """Everything the diff page and the API show for one message."""

    id: int
    state: State
    message: str
    where: str | None = None  # topic/partition@offset
    event_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    changes: list[Change] = field(default_factory=list)
    profile: str | None = None

    def as_json(self) -> dict[str, Any]:
        """For ``GET /api/v1/messages/{id}/diff``."""
        return {"id": self.id, "state": self.state, "message": self.message,
                "published_at": self.where, "event_id": self.event_id,
                "profile": self.profile, "before": self.before, "after": self.after,
                "changes": [{"path": c.path, "element": element_of(c.path), "kind": c.kind,
                             "before": c.before, "after": c.after} for c in self.changes]}

    def lines(self) -> tuple[list[Line], list[Line]]:
        """Both Bundles as marked lines (left: published, right: now)."""
        left = {"changed", "removed"}
        right = {"changed", "added"}
        return (_marked(self.before, [c for c in self.changes if c.kind in left]),
                _marked(self.after, [c for c in self.changes if c.kind in right]))


async def diff_row(console: Console, row_id: int) -> DiffResult:
    """The diff of one spooled message (no audit here: the caller records the view)."""
    info = await console.message(row_id)
    stored = await console.runtime.spool.body(row_id)
    now = None
    if stored is not None:
        _, _, now = await asyncio.to_thread(console.map_row, stored.raw, info.listener,
                                            info.charset, info.timezone)
    result = DiffResult(row_id, "ok", "", after=now.bundle if now else None,
                        profile=now.profile if now else None)
    # the first publication (what consumers saw first); rows published before the spool
    # kept it have only the latest one
    topic, partition, offset = ((info.first_topic, info.first_partition, info.first_offset)
                                if info.first_offset is not None else
                                (info.kafka_topic, info.kafka_partition, info.kafka_offset))
    if topic is None or partition is None or offset is None:
        result.state = "unpublished"
        result.message = ("this message was never published to Kafka (it is pending, or "
                          "failed): there is no published Bundle to compare with")
        return result
    result.where = f"{topic}/{partition}@{offset}"
    try:
        record = await read_record(console.runtime.settings.kafka, topic, partition, offset)
    except BrokerUnavailable as exc:
        result.state, result.message = "kafka-down", str(exc)
        return result
    if record is None:
        result.state = "gone"
        result.message = (f"the record {result.where} is no longer in Kafka (removed by the "
                          "topic's retention or compaction): only the Bundle as mapped now "
                          "can be shown")
        return result
    try:
        event = Event.from_kafka(record.key, record.value, record.headers)
        published = json.loads(event.data) if is_json_media_type(event.content_type) else None
    except (InvalidEvent, ValueError):
        published = None
        event = None
    result.event_id = event.id if event is not None else None
    if not isinstance(published, dict) or published.get("resourceType") != "Bundle":
        result.state = "not-a-bundle"
        result.message = (f"the record at {result.where} holds no FHIR Bundle (the raw "
                          "HL7 v2 of scale-out mode, or not a gateway event)")
        return result
    result.before = published
    if now is None or now.bundle is None:
        result.state = "unmappable"
        result.message = ("the current profiles cannot map this message: "
                          f"{now.error if now else 'its body is gone from the spool'}")
        return result
    result.changes = diff_bundles(published, now.bundle)
    result.message = (f"{len(result.changes)} element(s) differ" if result.changes else
                      "no difference: the current profiles make the Bundle that was published")
    return result


def _marked(bundle: Mapping[str, Any] | None, changes: list[Change]) -> list[Line]:
    if bundle is None:
        return []
    out: list[Line] = []
    for text, path in _layout(bundle):
        mark: Mark = ""
        if path is not None:
            for change in changes:
                if path == change.path or path.startswith((change.path + ".",
                                                          change.path + "[")):
                    mark = change.kind
                    break
        out.append(Line(text, mark))
    return out


def _layout(bundle: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    """Pretty-printed JSON lines, each with the ``bundle_diff`` path it shows (None for
    lines the diff does not compare, like an entry's ``fullUrl``)."""
    yield "{", None
    items = list(bundle.items())
    is_bundle = bundle.get("resourceType") == "Bundle"
    for n, (key, value) in enumerate(items):
        comma = "," if n < len(items) - 1 else ""
        if is_bundle and key == "entry" and isinstance(value, list):
            yield from _entries(value, comma)
        else:
            base = f"Bundle.{key}" if is_bundle else None
            yield from _value(value, 1, f'"{key}": ', base, comma)
    yield "}", None


def _entries(entries: list[Any], comma: str) -> Iterator[tuple[str, str | None]]:
    yield '  "entry": [', None
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        tail = "," if i < len(entries) - 1 else ""
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping):
            yield from _value(entry, 2, "", None, tail)
            continue
        key = _key(resource, i, entry.get("fullUrl"))
        while key in seen:
            key = f"{key}#{i}"
        seen.add(key)
        yield "    {", None
        keys = list(entry.items())
        for n, (name, value) in enumerate(keys):
            c = "," if n < len(keys) - 1 else ""
            yield from _value(value, 3, f'"{name}": ', key if name == "resource" else None, c)
        yield "    }" + tail, None
    yield "  ]" + comma, None


def _key(resource: Mapping[str, Any], position: int, full_url: Any) -> str:
    """An entry's key as ``bundle_diff`` makes it: type/id, else type/fullUrl, else position."""
    kind = str(resource.get("resourceType") or "entry")
    if resource.get("id"):
        return f"{kind}/{resource['id']}"
    if isinstance(full_url, str) and full_url:
        return f"{kind}/{full_url}"
    return f"{kind}[{position}]"


def _value(value: Any, depth: int, label: str, path: str | None, comma: str
           ) -> Iterator[tuple[str, str | None]]:
    pad = "  " * depth
    if isinstance(value, Mapping) and value:
        yield f"{pad}{label}{{", path
        items = list(value.items())
        for n, (key, child) in enumerate(items):
            c = "," if n < len(items) - 1 else ""
            yield from _value(child, depth + 1, f'"{key}": ',
                              f"{path}.{key}" if path else None, c)
        yield f"{pad}}}{comma}", path
    elif isinstance(value, list) and value:
        yield f"{pad}{label}[", path
        for n, child in enumerate(value):
            c = "," if n < len(value) - 1 else ""
            yield from _value(child, depth + 1, "", f"{path}[{n}]" if path else None, c)
        yield f"{pad}]{comma}", path
    else:
        yield f"{pad}{label}{json.dumps(value, ensure_ascii=False)}{comma}", path
