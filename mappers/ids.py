"""Deterministic resource ids: the same identifiers always give the same id.

An id is ``uuid5(NAMESPACE, "<ResourceType>|<key>")``; the key comes from a named key
function a resource spec chooses (``key: identifier`` on PID-3, ``key: message``...). A UUID
is a valid FHIR id and lets ``fullUrl`` be ``urn:uuid:<id>``. Keys hold identifiers, ids do
not: an id reveals nothing about the patient.
"""

from __future__ import annotations

import uuid
from typing import Final

from mappers.datatypes.identity import choose_by, choose_identifier, system_for
from mappers.engine.context import Context
from mappers.engine.refs import IdView
from mappers.engine.steps import CompiledResource
from mappers.errors import RequiredFieldMissing
from mappers.hl7v2 import Segment
from mappers.registry import id_key

try:  # CPython's own SHA-1: for 50-byte keys it skips OpenSSL's costly per-hash set-up
    from _sha1 import sha1 as _sha1  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import sha1 as _sha1

NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/hl7gw/hl7gw/resource-ids")
_NS_BYTES: Final = NAMESPACE.bytes


def resource_id(resource_type: str, key: str) -> str:
    """The id of a resource of ``resource_type`` whose stable key is ``key``.

    Equal to ``str(uuid.uuid5(NAMESPACE, f"{resource_type}|{key}"))``, computed without the
    UUID object (a third of the cost, and ids are made several times per message).
    """
    h = _sha1(_NS_BYTES + f"{resource_type}|{key}".encode()).hexdigest()
    # RFC 4122: the variant bits replace the top of nibble 16, "5" below is the version
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def assign_id(spec: CompiledResource, ctx: Context) -> str | None:
    """The id for the resource ``spec`` builds from ``ctx.segment``; None when there is none."""
    key = resource_key(spec, ctx)
    if key is None:
        return None
    # a shared resource (the same observer on every OBX) is keyed alike many times per
    # message: hash each key once (per message only, as keys hold identifiers)
    memo = ctx.rids
    found = memo.get((spec.resource, key))
    if found is None:
        found = memo[(spec.resource, key)] = resource_id(spec.resource, key)
    return found


def resource_key(spec: CompiledResource, ctx: Context) -> str | None:
    """The stable key of that id (no hashing: what ``check`` needs); raises
    ``RequiredFieldMissing`` when the spec requires a key and the message gives none."""
    ident = spec.id
    key = ident.key(ctx, ctx.segment, ident)
    if key is None and ident.fallback is not None:
        key = ident.fallback(ctx, ctx.segment, ident)
        if key is not None:
            where = ident.field.text if ident.field else spec.segment
            ctx.issue("fallback-id", f"{spec.resource} id made from the message, not {where}: "
                      "a replay with a new MSH-10 will not update the same resource",
                      location=where)
    if key is None:
        ref = ident.field
        if ident.required and ref is not None:
            raise RequiredFieldMissing(f"{ref.text} is empty: no {spec.resource} id",
                                       segment=ref.segment, sequence=ctx.segment.position,
                                       field=ref.field)
    return key


@id_key("identifier")
def identifier_key(ctx: Context, segment: Segment, spec: IdView) -> str | None:
    """``system|value`` of the chosen CX; ids without authority are scoped by MSH-4."""
    if spec.field is None:
        return None
    reps = ctx.values(spec.field)
    overlay = ctx.overlay
    rep = None
    if overlay is not None and spec.field.segment == "PID" and (
            overlay.key_authority is not None or overlay.key_type is not None):
        # the sender's profile says which identifier is the patient's key (its MRN)
        rep = choose_by(reps, overlay.key_authority, overlay.key_type)
        if rep is None and reps:
            ctx.issue("patient-key", f"no {spec.field.text} identifier of the profile's "
                      "authority/type: keyed on the usual choice", location=spec.field.text)
    if rep is None:
        rep = choose_identifier(reps)
    if rep is None:
        return None
    system = system_for(ctx, rep, 4) or f"facility:{ctx.header.sending_facility}"
    return f"{system}|{rep.component(1).strip()}"


@id_key("message")
def message_key(ctx: Context, segment: Segment, spec: IdView) -> str:
    """Sending application, facility and MSH-10: one per message."""
    h = ctx.header
    return f"{h.sending_application}|{h.sending_facility}|{h.control_id}"


@id_key("patient_message")
def patient_message_key(ctx: Context, segment: Segment, spec: IdView) -> str | None:
    """The patient's id and MSH-10: a per-message fallback scoped to the patient."""
    patient = ctx.ids.get("Patient")
    return f"{patient}|{ctx.header.control_id}" if patient else None


def _parts(ctx: Context, spec: IdView) -> list[str] | None:
    """The trimmed raw text of ``field`` and ``extra`` (first repetitions); None if no field."""
    if spec.field is None:
        return None
    main = ctx.raw(spec.field).strip()
    if not main or main == '""':
        return None
    return [main, *[ctx.raw(ref).strip() for ref in spec.extra]]


def _scope(ctx: Context, spec: IdView) -> str | None:
    """The first valued ``scope`` field (an order number, a visit number), as raw text."""
    for ref in spec.scope:
        raw = ctx.raw(ref).strip()
        if raw and raw != '""':
            return f"{ref.segment}-{ref.field}:{raw}"
    return None


@id_key("fields")
def fields_key(ctx: Context, segment: Segment, spec: IdView) -> str | None:
    """The field and ``extra`` fields as sent: reference data (a practitioner, a payer)."""
    parts = _parts(ctx, spec)
    if parts is None:
        return None
    scope = _scope(ctx, spec)
    return "|".join([scope, *parts] if scope else parts)


@id_key("patient_fields")
def patient_fields_key(ctx: Context, segment: Segment, spec: IdView) -> str | None:
    """The field and ``extra`` fields, within a ``scope`` (order, visit) or else the patient.

    An allergy is the patient's plus its code; a result is its order's plus OBX-3 and OBX-4.
    Without a patient or scope, the message scopes it (a replay with a new MSH-10 differs).
    """
    parts = _parts(ctx, spec)
    if parts is None:
        return None
    h = ctx.header
    scope = _scope(ctx, spec) or ctx.ids.get("Patient") or \
        f"{h.sending_application}|{h.sending_facility}|{h.control_id}"
    return "|".join([scope, *parts])


@id_key("order")
def order_key(ctx: Context, segment: Segment, spec: IdView) -> str | None:
    """The first valued order number (EI: entity id and namespace) of ``field``, ``extra``."""
    refs = [spec.field, *spec.extra] if spec.field is not None else list(spec.extra)
    for ref in refs:
        rep = ctx.value(ref)
        entity = rep.component(1).strip()
        if entity:
            # ORC-2 and OBR-2 are both the placer number, ORC-3 and OBR-3 the filler's:
            # the field number, not the segment, says which kind of number it is
            return f"{ref.field}|{rep.component(2).strip()}|{entity}"
    return None
