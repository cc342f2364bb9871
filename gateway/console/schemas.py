"""What the JSON API takes and gives, as pydantic models: the API's declared boundary.

Request bodies are *strict*: JSON ``true`` is not the number 1 and ``"7"`` is not a row id,
so a typing slip cannot widen a replay (``{"since": true}`` once meant "since 1970").
Every integer that reaches SQLite is bounded to its 64-bit range here, and text must be
encodable (a lone surrogate would fail deep inside SQLite, not here with a reason).
Response models document ``/openapi.json`` and keep each answer's shape fixed.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from gateway.spool import MessageFilter

MAX_ROW_ID = 2**63 - 1  # SQLite's INTEGER PRIMARY KEY range
MAX_REPLAY_IDS = 10_000  # SQLite binds each id as a variable; more would fail there
STATUSES = ("pending", "published", "failed", "conflict")
Status = Literal["pending", "published", "failed", "conflict"]


def seconds_from(value: str) -> float:
    """Unix seconds from text: a number, or ISO 8601 (no offset means UTC); ValueError."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = _iso_seconds(value)
    return finite_seconds(seconds)


def _iso_seconds(value: str) -> float:
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise ValueError(f"not a time: {value!r} (use ISO 8601 like 2024-01-15T10:30, "
                         "UTC unless an offset is given, or Unix seconds)") from None


def finite_seconds(seconds: float) -> float:
    """``seconds`` if it is a real number; ValueError for inf and nan."""
    if not math.isfinite(seconds):
        raise ValueError(f"not a time: {seconds} (Unix seconds must be a finite number)")
    return seconds


def _moment(value: object) -> float | None:
    """A JSON time: Unix seconds (a number, not true/false) or ISO 8601 text; ``""`` is None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("a time is Unix seconds or ISO 8601 text, not true or false")
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise ValueError("not a time: Unix seconds out of range")
        return float(value)
    if isinstance(value, float):
        return finite_seconds(value)
    if isinstance(value, str):
        return seconds_from(value)
    raise ValueError("a time is Unix seconds or ISO 8601 text")


def _encodable(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


Text = Annotated[str, Field(strict=True), AfterValidator(_encodable)]
RowId = Annotated[int, Field(strict=True, ge=1, le=MAX_ROW_ID)]
Moment = Annotated[float | None, PlainValidator(_moment),
                   WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"},
                                             {"type": "null"}],
                                   "description": "Unix seconds or ISO 8601 (UTC unless "
                                                  "an offset is given)"})]


# -- requests -----------------------------------------------------------------------------


class ReplayRequest(BaseModel):
    """``POST /api/v1/replay``: which published/failed rows to queue again."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ids: Annotated[list[RowId], Field(max_length=MAX_REPLAY_IDS)] | None = None
    sender: Text | None = None
    message_type: Text | None = None
    status: Status | None = None
    control_id: Text | None = None
    since: Moment = None
    until: Moment = None
    all: bool = False

    @model_validator(mode="after")
    def _not_everything_by_accident(self) -> ReplayRequest:
        if self.to_filter() == MessageFilter() and not self.all:
            raise ValueError("an empty filter would replay every message; "
                             'send "all": true if that is what you mean')
        return self

    def to_filter(self) -> MessageFilter:
        """The spool filter this request means (empty strings mean "not given")."""
        return MessageFilter(ids=tuple(self.ids or ()), sender=self.sender or None,
                             message_type=self.message_type or None, status=self.status,
                             control_id=self.control_id or None, since=self.since,
                             until=self.until)


class PlaygroundRequest(BaseModel):
    """``POST /api/v1/playground``: text to map and the profile to map it with."""

    model_config = ConfigDict(strict=True)

    text: Text
    profile: Text = "auto"  # "auto": by MSH as the gateway does; "": none; else a name


# -- responses ----------------------------------------------------------------------------


class ErrorOut(BaseModel):
    """Every refusal: ``{"error": "what was wrong and what to send instead"}``."""

    error: str


class SummaryOut(BaseModel):
    """The mapping summary kept with a published row: no values, only names."""

    issues: list[dict[str, Any]]
    unmapped: list[str]
    profile: str | None


class MessageOut(BaseModel):
    """A spooled message's metadata (no body)."""

    id: int
    received_at: float
    listener: str
    peer: str
    sender: str
    control_id: str
    message_type: str
    status: str
    conflict: bool
    attempts: int
    last_error: str | None
    published_at: float | None
    kafka_topic: str | None
    kafka_partition: int | None
    kafka_offset: int | None
    summary: SummaryOut
    replays: int
    size: int
    charset: str
    timezone: str
    received: str | None
    published: str | None


class MessagePage(BaseModel):
    """One page of messages, newest first; ``next_before`` pages on (null: the last)."""

    messages: list[MessageOut]
    next_before: int | None


class RejectedOut(BaseModel):
    """A refused message's metadata (no body)."""

    id: int
    received_at: float
    listener: str
    peer: str
    sender: str
    control_id: str
    ack_code: str
    err_code: str
    reason: str
    size: int
    received: str | None


class RejectedPage(BaseModel):
    """One page of refused messages, newest first."""

    rejected: list[RejectedOut]
    next_before: int | None


class MappingOut(BaseModel):
    """What the mapper makes of a message now (or the one line saying why it made nothing)."""

    profile: str | None
    timezone: str
    bundle: dict[str, Any] | None
    issues: list[dict[str, str]]
    unmapped: list[str]
    explanation: str | None
    error: str | None


class BodyOut(BaseModel):
    """A message's raw text, the ACK sent, and its mapping now (operators; audited)."""

    id: int
    charset: str
    raw: str
    ack: str
    mapping: MappingOut


class ReplayedOut(BaseModel):
    """The row ids a replay queued (rows pending already are not among them)."""

    replayed: list[int]


class ReprocessedRow(BaseModel):
    """Where a reprocessed message went: a stored message or a new rejected row."""

    status: str
    row_id: int


class ReprocessOut(BaseModel):
    """The ACK code a reprocess got, and the row it made."""

    id: int
    ack_code: str | None
    result: ReprocessedRow | None


class ProfileMatchOut(BaseModel):
    """MSH-3, MSH-4 and MSH-12 values a profile is for, as written (``*``: any)."""

    application: str
    facility: str
    version: str


class ProfileOut(BaseModel):
    """A live sender profile."""

    name: str
    description: str
    path: str
    match: ProfileMatchOut
    timezone: str | None
    charset: str | None


class ProfilesOut(BaseModel):
    """The live profiles, their reload generation and the last refused reload."""

    generation: int | None
    last_error: str | None
    profiles: list[ProfileOut]


class DashboardOut(BaseModel):
    """Row counts and the sampled series (rates per second, levels)."""

    counts: dict[str, int]
    series: dict[str, Any]
    history: dict[str, Any] | None = None  # {start, received, published, rejected, depth}


class AuditOut(BaseModel):
    """The latest audit entries, newest first."""

    entries: list[dict[str, Any]]


class SearchPageOut(BaseModel):
    """One page of a search, newest first. A text search reads bodies: ``scanned`` rows of
    the ``in_window`` ones below ``before`` (go on with ``next_before``); the indexed kinds
    may miss the ``index_behind`` newest rows while the indexer catches up."""

    messages: list[MessageOut]
    next_before: int | None
    kind: str
    scanned: int | None
    in_window: int | None
    index_behind: int


# -- the Interfaces page (gateway/console/interfaces.py) -----------------------------------

class ConnectionOut(BaseModel):
    """An MLLP connection open now."""

    peer: str
    since: float
    messages: int
    last_message_at: float | None


class SenderOut(BaseModel):
    """A sender on a listener: state, last message, counts over 1 h and 24 h, silence."""

    sender: str
    application: str
    facility: str
    configured: bool
    metric_label: str
    state: Literal["connected", "host connected", "not connected"]
    last_peer: str | None
    last_message_at: float | None
    counts_1h: dict[str, int]
    counts_24h: dict[str, int]
    types_1h: dict[str, int]
    types_24h: dict[str, int]
    error_ratio_1h: float | None
    error_ratio_24h: float | None
    usual_gap_s: float | None
    silent_for_s: float | None
    silent: bool | None


class ListenerOut(BaseModel):
    """An MLLP listener, its open connections and its senders."""

    name: str
    host: str
    port: int
    tls: bool
    running: bool
    configured: bool
    connections: list[ConnectionOut]
    senders: list[SenderOut]


class SilenceRuleOut(BaseModel):
    """Silent: quiet for over ``factor`` times the usual gap and ``min_silence_s``; no
    verdict with fewer than ``min_messages`` in 24 h (gateway/console/interfaces_view.py)."""

    factor: float
    min_silence_s: float
    min_messages: int


class InterfacesOut(BaseModel):
    """Every listener and outbound destination, and the silence rule's parameters."""

    generated_at: float
    listeners: list[ListenerOut]
    destinations: dict[str, Any]
    silence_rule: SilenceRuleOut


# -- bulk actions and the Bundle diff (gateway/console/bulk.py) ---------------------------


class BulkRequest(BaseModel):
    """``POST /api/v1/messages/bulk``: an action on ids, or on what a filter matches.

    ``filter`` takes the Messages page's query parameters (``sender``, ``type``,
    ``status``, ``control_id``, ``since``, ``until`` and the search's fields) as text.
    Without ``"confirm": true`` nothing happens: the answer is the preview.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    action: Literal["replay", "reprocess", "export-hl7", "export-ndjson"]
    ids: Annotated[list[RowId], Field(max_length=MAX_REPLAY_IDS)] | None = None
    filter: dict[Text, Text] | None = None
    confirm: bool = False

    @model_validator(mode="after")
    def _ids_or_filter(self) -> BulkRequest:
        if (self.ids is None) == (self.filter is None):
            raise ValueError('send either "ids" (a list of row ids) or "filter" '
                             "(the Messages page's query parameters), not both or neither")
        if self.ids is not None and not self.ids:
            raise ValueError('"ids" is empty: name at least one row id')
        if self.filter is not None and not any(self.filter.values()):
            raise ValueError('an empty "filter" would select every message: name at least '
                             "one field (sender, type, status, since, ...)")
        return self


class BulkPreviewOut(BaseModel):
    """What a bulk action would act on (``confirm`` false), or what it did."""

    action: str
    confirmed: bool
    count: int
    max: int
    statuses: dict[str, int]
    senders: dict[str, int]
    types: dict[str, int]
    sample_control_ids: list[str]
    first_id: int | None
    last_id: int | None
    queued: list[int] | None = None
    not_mapped: dict[str, str] | None = None  # reprocess: row id -> why it maps no more
    skipped_pending: int | None = None


class DiffChangeOut(BaseModel):
    """One element that differs: its path, the element (no ids, no indexes) and values."""

    path: str
    element: str
    kind: Literal["added", "removed", "changed"]
    before: Any
    after: Any


class DiffOut(BaseModel):
    """``GET /api/v1/messages/{id}/diff``: the Bundle as published vs as mapped now."""

    id: int
    state: Literal["ok", "unpublished", "gone", "not-a-bundle", "kafka-down", "unmappable"]
    message: str
    published_at: str | None
    event_id: str | None
    profile: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changes: list[DiffChangeOut]
