"""``convert``: one HL7 v2 message -> a FHIR R4 transaction Bundle, driven by the YAML specs."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from mappers.engine.build import build_resource, find_unmapped
from mappers.engine.context import Context
from mappers.engine.loader import CompiledMessage, SpecSet, load_specs
from mappers.engine.steps import CompiledResource
from mappers.errors import (
    RequiredFieldMissing,
    SegmentSequenceError,
    UnsupportedEvent,
    UnsupportedMessageType,
    UnsupportedVersion,
)
from mappers.hl7v2 import Header, Message, Segment, parse
from mappers.ids import assign_id, resource_id, resource_key
from mappers.result import ConversionResult
from mappers.timestamps import TimestampError, to_fhir, zone

if TYPE_CHECKING:
    from mappers.profiles import Profile


@cache
def default_specs() -> SpecSet:
    """The built-in specs, loaded and checked once per process."""
    return load_specs()


def supported_message_types() -> frozenset[str]:
    """Every ``CODE^EVENT`` the specs can convert, e.g. ``ADT^A01``."""
    return frozenset(f"{code}^{event}" for code, event in default_specs().messages)


def convert(text: str, *, validate: bool = False, default_tz: str | None = None,
            profile: Profile | None = None) -> ConversionResult:
    """Convert one HL7 v2 message to a FHIR R4 transaction Bundle (same input, same bytes).

    ``default_tz`` gives the offset of timestamps that have a time but no offset (default:
    the profile's time zone, else UTC). ``profile`` is the sender's profile
    (``mappers.profiles``): its code tables, field rules and identifier choices apply.
    ``validate=True`` also checks the Bundle with the fhir.resources models (slow, ~ms).
    """
    return _convert(text, validate, default_tz, None, profile)


def _convert(text: str, validate: bool, default_tz: str | None,
             trace: list[tuple[str, str, str, Any]] | None,
             profile: Profile | None = None) -> ConversionResult:
    """``convert``; with a ``trace`` list, every rule application is recorded in it."""
    message, compiled, ctx = _prepare(text, default_tz, profile)
    ctx.trace = trace
    entries = _entries(compiled, message, ctx)
    unmapped = find_unmapped(message, compiled, ctx)
    bundle = _bundle(ctx, entries)
    if validate:
        from mappers.validation import validate_bundle  # fhir.resources imports take 0.4 s

        validate_bundle(bundle)
    header = message.header
    return ConversionResult(bundle, header.message_type, header.control_id,
                            ctx.ids.get("Patient"), ctx.issues, unmapped, header)


def check(text: str, *, default_tz: str | None = None, profile: Profile | None = None
          ) -> Header:
    """Refuse what ``convert`` would refuse for the envelope and structure; build nothing.

    Cheap enough to run before the ACK: tokenizes, reads MSH, checks type, event, version,
    required segments and the identifiers required resource ids are keyed on. Raises the
    same ``MessageError`` subclass (same segment and field) that ``convert`` raises.
    """
    message, compiled, ctx = _prepare(text, default_tz, profile)
    for spec in compiled.resources:
        if not spec.id.required:
            continue
        for segment in _occurrences(spec, message):
            ctx.enter(segment, spec.children)
            if spec.conditions and not all(pred(ctx, ref) for pred, ref in spec.conditions):
                continue
            resource_key(spec, ctx)  # raises RequiredFieldMissing like convert's assign_id
    return message.header


def patient_key(text: str, *, default_tz: str | None = None,
                profile: Profile | None = None) -> str | None:
    """The id ``convert`` gives the message's first Patient, without building anything.

    What ``ConversionResult.patient_key`` would be (the Kafka key of the message's
    events), at the cost of ``check``: the scale-out mode keys each raw message by it, so
    that one patient's messages stay in one partition of the raw topic and are mapped in
    order by one ``hl7gw mapper``. Raises the ``MessageError`` that ``convert`` would.
    """
    message, compiled, ctx = _prepare(text, default_tz, profile)
    for spec in compiled.resources:
        if spec.resource != "Patient":
            continue
        for segment in _occurrences(spec, message):
            ctx.enter(segment, spec.children)
            if spec.conditions and not all(pred(ctx, ref) for pred, ref in spec.conditions):
                continue
            key = resource_key(spec, ctx)
            if key is not None:
                return resource_id("Patient", key)
    return None


def _prepare(text: str, default_tz: str | None, profile: Profile | None
             ) -> tuple[Message, CompiledMessage, Context]:
    """Tokenize, choose the message spec and check the envelope: shared by convert and check."""
    if profile is None:
        tz = default_tz or "UTC"
        specs = default_specs()
        overlay = None
    else:
        tz = default_tz or profile.timezone or "UTC"
        specs = profile.specs
        overlay = profile.overlay
        if profile.ignore_segments:
            text = _without(text, profile.ignore_segments)
    zone(tz)  # an unknown zone is the caller's error: raise before reading anything
    message = parse(text)
    compiled = _message_spec(specs, message.header)
    _check_message(compiled, message)
    return message, compiled, Context(message, specs.tables, specs.resolved_tables, tz, overlay)


def _without(text: str, segments: frozenset[str]) -> str:
    """``text`` without the segments a profile ignores (neither mapped nor reported)."""
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return "\r".join(line for line in lines if line[:3] not in segments or line.startswith("MSH"))


def _entries(compiled: CompiledMessage, message: Message, ctx: Context) -> list[dict[str, Any]]:
    """Build each resource the message spec lists, in order, as transaction entries."""
    for seg in compiled.spec.expected_segments:
        if message.get(seg) is None:
            ctx.issue("missing-segment", f"{seg} is missing: what it maps to is left out",
                      location=seg)
    entries: list[dict[str, Any]] = []
    urls = Written()
    for spec in compiled.resources:
        for segment in _occurrences(spec, message):
            ctx.enter(segment, spec.children)
            if spec.conditions and not all(pred(ctx, ref) for pred, ref in spec.conditions):
                continue
            entry = _entry(spec, ctx, urls)
            if entry is not None:
                entries.append(entry)
    return entries


def _occurrences(spec: CompiledResource, message: Message) -> list[Segment]:
    """The segments a resource spec builds from: each occurrence, or the first."""
    if spec.repeat:
        return message.get_all_view(spec.segment)
    first = message.get(spec.segment)
    return [first] if first is not None else []


class Written:
    """The entry urls of one Bundle so far, and where each id's collision suffixes got to.

    Two entries with the same key in one message (a text report's OBX lines all share OBX-3
    and OBX-4) get the ids of ``<id>#2``, ``<id>#3``...: the first suffix whose url is
    free. Searching from ``#2`` for every duplicate cost a report of n lines n²/2 hashes
    (16,000 lines: minutes). Each search now starts where the previous one for the same id
    stopped, which gives the same ids: urls are only ever added, so a suffix that was taken
    then is taken still. ``probes`` counts the urls tried, for a test of that bound.
    """

    __slots__ = ("_next", "probes", "urls")

    def __init__(self) -> None:
        self.urls: set[str] = set()
        self._next: dict[str, int] = {}  # url of the unsuffixed id -> first suffix to try
        self.probes = 0

    def __contains__(self, url: str) -> bool:
        return url in self.urls

    def add(self, url: str) -> None:
        self.urls.add(url)

    def suffixed(self, resource: str, rid: str) -> tuple[str, str]:
        """The id and url of the first free ``<rid>#<n>`` (n >= 2) of ``resource``."""
        base = f"{resource}/{rid}"
        n = self._next.get(base, 2)
        while True:
            self.probes += 1
            new = resource_id(resource, f"{rid}#{n}")
            url = f"{resource}/{new}"
            if url not in self.urls:
                break
            n += 1
        self._next[base] = n  # not n + 1: the entry may yet not be written (built as None)
        return new, url


def _entry(spec: CompiledResource, ctx: Context, urls: Written) -> dict[str, Any] | None:
    """One transaction entry for the resource built from ``ctx.segment``, or None."""
    rid = assign_id(spec, ctx)
    if rid is None:
        ctx.issue("no-id", f"{spec.resource} not produced: nothing to key its id on",
                  severity="error", location=spec.segment)
        return None
    url = f"{spec.resource}/{rid}"
    if url in urls:
        if spec.id.shared:  # the same practitioner again: refer to the one already written
            ctx.record(spec.key, url, spec.segment)
            return None
        rid, url = urls.suffixed(spec.resource, rid)  # same key twice in one message
    resource = build_resource(spec, rid, ctx)
    if resource is None:
        return None
    urls.add(url)
    ctx.ids.setdefault(spec.resource, rid)
    ctx.record(spec.key, url, spec.segment)
    return {"fullUrl": f"urn:uuid:{rid}", "resource": resource,
            "request": {"method": "PUT", "url": url}}


def _message_spec(specs: SpecSet, header: Header) -> CompiledMessage:
    found = specs.messages.get((header.message_code, header.trigger_event))
    if found is not None:
        return found
    if any(code == header.message_code for code, _ in specs.messages):
        raise UnsupportedEvent(f"trigger event {header.trigger_event} of "
                               f"{header.message_code} is not supported",
                               segment="MSH", sequence=1, field=9)
    raise UnsupportedMessageType(f"message type {header.message_code} is not supported",
                                 segment="MSH", sequence=1, field=9)


def _check_message(compiled: CompiledMessage, message: Message) -> None:
    version = message.header.version
    if not version:
        raise RequiredFieldMissing("MSH-12 (version id) is empty", segment="MSH", sequence=1,
                                   field=12)
    if version not in compiled.spec.versions:
        raise UnsupportedVersion(f"HL7 version {version} is not supported",
                                 segment="MSH", sequence=1, field=12)
    for seg in compiled.spec.required_segments:
        if message.get(seg) is None:
            raise SegmentSequenceError(f"required segment {seg} is missing", segment=seg)


def _bundle(ctx: Context, entries: list[dict[str, Any]]) -> dict[str, Any]:
    header = ctx.header
    key = f"{header.sending_application}|{header.sending_facility}|{header.control_id}"
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": resource_id("Bundle", key),
                              "identifier": {"value": header.control_id.strip()},
                              "type": "transaction"}
    stamp = _instant(ctx, message_time=header.timestamp)
    if stamp:
        bundle["timestamp"] = stamp
    bundle["entry"] = entries
    return bundle


def _instant(ctx: Context, message_time: str) -> str | None:
    if not message_time:
        return None
    try:
        return to_fhir(message_time.split(ctx.message.encoding.component)[0], "instant",
                       ctx.default_tz)
    except TimestampError as exc:
        ctx.issue("invalid-value", f"{exc}; Bundle.timestamp left out", location="MSH-7")
        return None
