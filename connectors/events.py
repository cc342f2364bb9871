"""The event every connector carries: a CloudEvents 1.0 envelope around a FHIR payload.

Three wire forms are supported, all for the same :class:`Event`:

- Kafka binary mode: attributes in record headers ``ce_specversion``, ``ce_id``,
  ``ce_source``, ``ce_type``, ``ce_time``, ``ce_subject``, ``ce_partitionkey`` and other
  ``ce_<extension>`` headers, the media type in ``content-type``, the data as the value.
- HTTP binary mode: the same attributes as ``ce-<name>`` headers (percent-encoded where
  the HTTP binding requires it) and ``content-type``; the data is the body.
- HTTP structured mode: one JSON object (``application/cloudevents+json``).

Headers travel in clear through brokers, proxies and access logs, so they must never
carry PHI: callers put only opaque ids in ``id``, ``subject`` and ``key`` (the gateway uses
the deterministic Patient resource id, never a name or MRN), and types and sources that
name systems, not people. The PHI lives only in ``data``.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import orjson

from connectors.errors import InvalidEvent

SPEC_VERSION = "1.0"
FHIR_JSON = "application/fhir+json"
STRUCTURED_JSON = "application/cloudevents+json"

KAFKA_PREFIX = "ce_"
HTTP_PREFIX = "ce-"
CONTENT_TYPE = "content-type"
PARTITION_KEY = "partitionkey"

# Context attributes that have their own Event field; anything else is an extension.
_CORE = frozenset({"specversion", "id", "source", "type", "subject", "time",
                   "datacontenttype", PARTITION_KEY})
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
# HTTP binding 3.1.3.2: space, '"', '%' and anything outside U+0021..U+007E is encoded.
_HTTP_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


@dataclass(frozen=True)
class Event:
    """One CloudEvent: context attributes plus opaque ``data`` bytes (no PHI outside data)."""

    id: str
    source: str
    type: str
    subject: str | None
    time: str | None
    key: bytes | None
    data: bytes
    content_type: str = FHIR_JSON
    extensions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("id", "source", "type"):
            if not getattr(self, name):
                raise InvalidEvent(f"CloudEvent attribute {name!r} is required")
        if self.time is not None:
            _check_time(self.time)
        for name in self.extensions:
            if not _EXTENSION_NAME.match(name) or name in _CORE:
                raise InvalidEvent(f"invalid CloudEvent extension name {name!r}")

    @classmethod
    def new(cls, *, source: str, type: str, data: bytes, subject: str | None = None,
            key: bytes | None = None, content_type: str = FHIR_JSON,
            id: str | None = None, extensions: Mapping[str, str] | None = None) -> Event:
        """An event stamped now (UTC), with a random id unless a stable ``id`` is given."""
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return cls(id=id or str(uuid.uuid4()), source=source, type=type, subject=subject,
                   time=stamp, key=key, data=data, content_type=content_type,
                   extensions=dict(extensions or {}))

    @property
    def partition_key(self) -> str | None:
        """The record key as text for the ``partitionkey`` extension, if it is UTF-8."""
        if self.key is None:
            return None
        try:
            return self.key.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def attributes(self) -> dict[str, str]:
        """Context attributes by CloudEvents name, without ``datacontenttype``."""
        attrs = {"specversion": SPEC_VERSION, "id": self.id, "source": self.source,
                 "type": self.type}
        if self.time is not None:
            attrs["time"] = self.time
        if self.subject is not None:
            attrs["subject"] = self.subject
        if self.partition_key is not None:
            attrs[PARTITION_KEY] = self.partition_key
        attrs.update(self.extensions)
        return attrs

    # Kafka binary mode -------------------------------------------------------------

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """Record headers for the CloudEvents Kafka binding, binary content mode."""
        headers = [(KAFKA_PREFIX + name, value.encode("utf-8"))
                   for name, value in self.attributes().items()]
        headers.append((CONTENT_TYPE, self.content_type.encode("utf-8")))
        return headers

    @classmethod
    def from_kafka(cls, key: bytes | None, value: bytes | None,
                   headers: Iterable[tuple[str, bytes]]) -> Event:
        """Read a binary-mode record; raises :class:`InvalidEvent` when it is not one."""
        if value is None:
            raise InvalidEvent("record has no value (tombstone)")
        attrs: dict[str, str] = {}
        content_type = None
        for name, raw in headers:
            lname = name.lower()
            text = _utf8(raw, name)
            if lname == CONTENT_TYPE:
                content_type = text
            elif lname.startswith(KAFKA_PREFIX):
                attrs[lname[len(KAFKA_PREFIX):]] = text
        return cls._from_attributes(attrs, key=key, data=value, content_type=content_type,
                                    named="header " + KAFKA_PREFIX + "{}")

    # HTTP binary mode --------------------------------------------------------------

    def http_headers(self) -> dict[str, str]:
        """Request headers for the CloudEvents HTTP binding, binary content mode."""
        headers = {HTTP_PREFIX + name: quote(value, safe=_HTTP_SAFE)
                   for name, value in self.attributes().items()}
        headers[CONTENT_TYPE] = self.content_type
        return headers

    @classmethod
    def from_http(cls, headers: Mapping[str, str], body: bytes) -> Event:
        """Read a binary-mode HTTP request; raises :class:`InvalidEvent` when it is not one."""
        attrs: dict[str, str] = {}
        content_type = None
        for name, value in headers.items():
            lname = name.lower()
            if lname == CONTENT_TYPE:
                content_type = value
            elif lname.startswith(HTTP_PREFIX):
                attrs[lname[len(HTTP_PREFIX):]] = unquote(value)
        key = attrs.get(PARTITION_KEY)
        return cls._from_attributes(attrs, key=key.encode("utf-8") if key is not None else None,
                                    data=body, content_type=content_type,
                                    named="header " + HTTP_PREFIX + "{}")

    # HTTP structured mode ----------------------------------------------------------

    def to_structured(self) -> bytes:
        """This event as one ``application/cloudevents+json`` document."""
        doc: dict[str, Any] = dict(self.attributes())
        doc["datacontenttype"] = self.content_type
        if _is_json(self.content_type):
            try:
                doc["data"] = orjson.loads(self.data)
            except orjson.JSONDecodeError as exc:
                raise InvalidEvent("event data is not the JSON its content type says") from exc
        else:
            doc["data_base64"] = base64.b64encode(self.data).decode("ascii")
        return orjson.dumps(doc)

    @classmethod
    def from_structured(cls, body: bytes) -> Event:
        """Read a structured-mode JSON document; raises :class:`InvalidEvent` if it is not."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent("structured CloudEvent is not valid JSON") from exc
        if not isinstance(doc, dict):
            raise InvalidEvent("structured CloudEvent must be a JSON object")
        content_type = doc.pop("datacontenttype", None) or "application/json"
        data = _structured_data(doc, str(content_type))
        attrs = {name: _attribute_text(name, value) for name, value in doc.items()}
        key = attrs.get(PARTITION_KEY)
        return cls._from_attributes(attrs, key=key.encode("utf-8") if key is not None else None,
                                    data=data, content_type=str(content_type),
                                    named="attribute '{}'")

    # -------------------------------------------------------------------------------

    @classmethod
    def _from_attributes(cls, attrs: dict[str, str], *, key: bytes | None, data: bytes,
                         content_type: str | None, named: str) -> Event:
        for name in ("specversion", "id", "source", "type"):
            if not attrs.get(name):
                raise InvalidEvent(f"CloudEvent {named.format(name)} is required")
        if attrs["specversion"] != SPEC_VERSION:
            raise InvalidEvent(f"unsupported CloudEvents specversion {attrs['specversion']!r}; "
                               f"only {SPEC_VERSION} is accepted")
        extensions = {k: v for k, v in attrs.items() if k not in _CORE}
        return cls(id=attrs["id"], source=attrs["source"], type=attrs["type"],
                   subject=attrs.get("subject"), time=attrs.get("time"), key=key, data=data,
                   content_type=content_type or FHIR_JSON, extensions=extensions)


def is_json_media_type(content_type: str) -> bool:
    """Whether a media type names JSON (``application/json``, ``*/*+json``)."""
    return _is_json(content_type)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _utf8(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"header {name!r} is not UTF-8") from exc


def _check_time(value: str) -> None:
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidEvent("CloudEvent attribute 'time' is not an RFC 3339 timestamp") from exc
    if "T" not in value.upper() or stamp.tzinfo is None:
        raise InvalidEvent("CloudEvent attribute 'time' needs a date, a time and an offset")


def _attribute_text(name: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent(f"CloudEvent attribute {name!r} must be a string")
    return str(value)


def _structured_data(doc: dict[str, Any], content_type: str) -> bytes:
    if "data_base64" in doc:
        try:
            return base64.b64decode(str(doc.pop("data_base64")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidEvent("CloudEvent 'data_base64' is not base64") from exc
    if "data" not in doc:
        return b""
    data = doc.pop("data")
    if _is_json(content_type):
        return orjson.dumps(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    raise InvalidEvent("CloudEvent 'data' must be a string unless its content type is JSON")
