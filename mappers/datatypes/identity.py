"""Identifiers and who-is-who: CX, XCN, HD (assigning authorities, applications, facilities).

An assigning authority (HD) becomes an identifier system: ``urn:oid:`` for an ISO OID,
``urn:uuid:`` for a UUID, the URI itself for a URI, else ``urn:id:<namespace>`` (the
LinuxForHealth convention), so the same authority always yields the same system.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote

from mappers.datatypes.simple import timestamp
from mappers.engine.context import Context
from mappers.engine.paths import compact
from mappers.engine.refs import RuleView
from mappers.hl7v2 import Repetition
from mappers.registry import datatype

_OID: Final = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")  # FHIR oid: ASCII digits only
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
NAME_URN: Final = "urn:id:"
ENDPOINT_URN: Final = "urn:hl7v2:"
# a feed uses few authorities: remember them
_SYSTEMS: Final[dict[tuple[str, str, str], str | None]] = {}
_SYSTEMS_MAX: Final = 4096


@lru_cache(maxsize=1024)
def _urn_part(name: str) -> str:
    """``name`` percent-encoded for use inside a URN (names repeat: remembered)."""
    return quote(name, safe="-._~")


def authority_system(hd: Repetition) -> str | None:
    """The identifier system an assigning authority (HD: namespace & universal id & type) names."""
    key = hd.cache_key
    if key in _SYSTEMS:
        return _SYSTEMS[key]
    return _remember(key, _system_of(hd))


def component_authority(rep: Repetition, at: int) -> str | None:
    """``authority_system`` of component ``at`` (an HD inside a CX or XCN), memoised."""
    raw = rep.raw_component(at)
    if not raw:
        return None
    enc = rep.encoding
    key = (raw, enc.subcomponent, enc.escape)
    if key in _SYSTEMS:
        return _SYSTEMS[key]
    return _remember(key, _system_of(Repetition(raw, enc, sep=enc.subcomponent)))


def _system_of(hd: Repetition) -> str | None:
    namespace, uid, kind = hd.decoded(3)
    kind = kind.upper()
    if uid and _OID.fullmatch(uid) and kind in {"ISO", ""}:
        return f"urn:oid:{uid}"
    if uid and _UUID.fullmatch(uid) and kind in {"UUID", "GUID", ""}:
        return f"urn:uuid:{uid.lower()}"
    if uid and kind in {"URI", "URL"} and ":" in uid and not any(c.isspace() for c in uid):
        return uid
    if namespace:
        return NAME_URN + _urn_part(namespace)
    return None


def _remember(key: tuple[str, str, str], system: str | None) -> str | None:
    if len(_SYSTEMS) >= _SYSTEMS_MAX:
        _SYSTEMS.clear()
    _SYSTEMS[key] = system
    return system


def system_for(ctx: Context, rep: Repetition, at: int) -> str | None:
    """``component_authority``, unless the sender's profile names the authority's system."""
    overlay = ctx.overlay
    if overlay is not None and overlay.systems:
        raw = rep.raw_component(at)
        if raw:
            hd = Repetition(raw, rep.encoding, sep=rep.encoding.subcomponent).decoded(2)
            found = overlay.systems.get(hd[0]) or (overlay.systems.get(hd[1]) if hd[1] else None)
            if found is not None:
                return found
    return component_authority(rep, at)


def choose_identifier(reps: list[Repetition]) -> Repetition | None:
    """The identifier a resource id is keyed on: the first with an assigning authority."""
    valued = [rep for rep in reps if rep.component(1).strip()]
    for rep in valued:
        if component_authority(rep, 4):
            return rep
    return valued[0] if valued else None


def choose_by(reps: list[Repetition], authority: str | None, kind: str | None
              ) -> Repetition | None:
    """The first valued CX whose authority (CX.4.1 or .2) and type (CX.5) are those given."""
    for rep in reps:
        c = rep.decoded(5)
        if not c[0].strip():
            continue
        if kind is not None and c[4] != kind:
            continue
        if authority is not None:
            raw = rep.raw_component(4)
            hd = Repetition(raw, rep.encoding, sep=rep.encoding.subcomponent).decoded(2) \
                if raw else ["", ""]
            if authority not in (hd[0], hd[1]):
                continue
        return rep
    return None


@datatype("CX", args={"default_type": str})
def identifier(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """CX as an Identifier: value, system from the authority, type via table 0203, period."""
    c = rep.decoded(8)
    value = c[0]
    if not value:
        return None
    out: dict[str, Any] = {"value": value}
    system = system_for(ctx, rep, 4)
    if system:
        out["system"] = system
    type_code = c[4] or rule.args.get("default_type")
    if isinstance(type_code, str) and type_code:
        found, coding = ctx.lookup("0203", type_code)
        out["type"] = {"coding": [coding]} if found else {"text": type_code}
    if c[3]:
        out["assigner"] = {"display": c[3]}
    period = compact({"start": _date(rep, 7, ctx, rule), "end": _date(rep, 8, ctx, rule)}) \
        if c[6] or c[7] else None
    if period:
        out["period"] = period
    return out


def _date(rep: Repetition, at: int, ctx: Context, rule: RuleView) -> str | None:
    part = rep.part(at)
    return timestamp(part, ctx, rule) if part else None


@datatype("XCN", pure=True)
def practitioner(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """XCN as a display Reference with the person's id as a logical identifier."""
    c = rep.decoded(9)
    # prefix, given, middle, family, suffix, degree
    display = " ".join(p for p in (c[5], c[2], c[3], c[1], c[4], c[6]) if p)
    out: dict[str, Any] = {"display": display} if display else {}
    if c[0]:
        system = system_for(ctx, rep, 9)
        out["identifier"] = {"value": c[0], "system": system} if system else {"value": c[0]}
    return out or None


@datatype("HD", pure=True)
def hd_name(rep: Repetition, ctx: Context, rule: RuleView) -> str | None:
    """HD as a name: its namespace id, else its universal id."""
    namespace, uid = rep.decoded(2)
    return namespace or uid or None


@datatype("endpoint", args={"role": ("application", "facility")})
def endpoint(rep: Repetition, ctx: Context, rule: RuleView) -> str | None:
    """An application and its facility (HD, HD from ``extra``) as an endpoint URI.

    An OID, UUID or URI in the HD is used as it is; else ``urn:hl7v2:<app>:<facility>``.
    With ``role: facility`` the value is the facility and the application is empty.
    """
    system = authority_system(rep)
    if system is not None and not system.startswith(NAME_URN):
        return system
    own = rep.component(1).strip()
    if rule.args.get("role") == "facility":
        names = ["", own]
    else:
        facility = ctx.value(rule.extra[0]).component(1).strip() if rule.extra else ""
        names = [own, facility]
    if not any(names):
        return None
    return ENDPOINT_URN + ":".join(_urn_part(n) for n in names)


@datatype("organization", pure=True)
def organization(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """A facility (HD) as a display Reference, with its OID/URI as a logical identifier."""
    system = authority_system(rep)
    ident = None
    if system is not None and not system.startswith(NAME_URN):
        ident = {"system": "urn:ietf:rfc:3986", "value": system}
    return compact({"display": rep.component(1).strip(), "identifier": ident})


@datatype("XCN_name", pure=True)
def practitioner_name(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """XCN's name parts (XCN.2-7) as a HumanName."""
    c = rep.decoded(7)
    family, given = c[1], [g for g in (c[2], c[3]) if g]
    suffix = [s for s in (c[4], c[6]) if s]
    return compact({"family": family, "given": given, "prefix": [c[5]] if c[5] else None,
                    "suffix": suffix})


@datatype("XCN_identifier", pure=True)
def practitioner_identifier(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """XCN's id (XCN.1) as an Identifier, its system from the authority (XCN.9)."""
    value = rep.component(1).strip()
    if not value:
        return None
    system = system_for(ctx, rep, 9)
    return {"system": system, "value": value} if system else {"value": value}


@datatype("EI", args={"type": ("PLAC", "FILL")})
def entity_identifier(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """EI (entity^namespace^universal id^type) as an Identifier; ``type`` PLAC or FILL."""
    c = rep.decoded(4)
    if not c[0]:
        return None
    hd = Repetition("^".join(c[1:4]), rep.encoding.__class__())  # the authority as an HD
    out: dict[str, Any] = {"value": c[0]}
    system = _system_of(hd) if any(c[1:4]) else None
    if system:
        out["system"] = system
    kind = rule.args.get("type")
    if isinstance(kind, str):
        out["type"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                   "code": kind}]}
    return out
