"""People and places: XPN names, XAD addresses, XTN telecoms and PL locations."""

from __future__ import annotations

from typing import Any

from mappers.datatypes.simple import timestamp
from mappers.engine.context import Context
from mappers.engine.paths import compact
from mappers.engine.refs import RuleView
from mappers.hl7v2 import Repetition
from mappers.registry import datatype


def _period(rep: Repetition, start_at: int, end_at: int, ctx: Context,
            rule: RuleView) -> dict[str, Any] | None:
    start = timestamp(rep.part(start_at), ctx, rule) if rep.component(start_at) else None
    end = timestamp(rep.part(end_at), ctx, rule) if rep.component(end_at) else None
    return compact({"start": start, "end": end})


def _coded(code: str, table: str, ctx: Context) -> Any:
    code = code.strip()
    return ctx.lookup(table, code)[1] if code else None


@datatype("XPN")
def human_name(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """XPN as a HumanName: family, given + middle, prefix, suffixes, use via table 0200."""
    c = rep.decoded(14)
    family, given, prefix = c[0], [g for g in (c[1], c[2]) if g], [c[4]] if c[4] else []
    suffix = [s for s in (c[3], c[5], c[13]) if s]  # suffix, degree, professional suffix
    if not (family or given or prefix or suffix):
        return None
    name: dict[str, Any] = {}
    use = _coded(c[6], "0200", ctx) if c[6] else None
    if use:
        name["use"] = use
    if family:
        name["family"] = family
    if given:
        name["given"] = given
    if prefix:
        name["prefix"] = prefix
    if suffix:
        name["suffix"] = suffix
    period = _period(rep, 12, 13, ctx, rule) if c[11] or c[12] else None
    if period:
        name["period"] = period
    return name


@datatype("XAD")
def address(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """XAD as an Address: lines, city, state, postal code, country, use/type via table 0190."""
    c = rep.decoded(14)
    first_line = c[0]
    if not first_line:  # SAD.2 street name and SAD.3 dwelling number instead of SAD.1
        street = rep.subcomponents(1)
        first_line = " ".join(s.strip() for s in reversed(street[1:3]) if s.strip())
    out: dict[str, Any] = {"line": [x for x in (first_line, c[1]) if x], "city": c[2],
                           "state": c[3], "postalCode": c[4], "country": c[5],
                           "district": c[8]}
    if not any(out.values()):
        return None
    kind = _coded(c[6], "0190", ctx)
    if isinstance(kind, dict):
        out.update(kind)
    if c[12] or c[13]:
        out["period"] = _period(rep, 13, 14, ctx, rule)
    return compact(out)


@datatype("XTN", args={"default_use": ("home", "work", "temp", "old", "mobile")})
def contact_point(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """XTN as a ContactPoint: number or email, system via table 0202, use via table 0201."""
    c = rep.decoded(12)
    equipment = _coded(c[2], "0202", ctx)
    kind: dict[str, Any] = dict(equipment) if isinstance(equipment, dict) else {}
    email = c[3]
    number = c[11] or _compose_number(c) or c[0]
    if kind.get("system") == "email" or (email and not number):
        value, kind["system"] = email or number, "email"
    else:
        value = number
        kind.setdefault("system", "phone")  # FHIR cpt-2: a value needs a system
    if not value:
        return None
    use = kind.get("use") or _coded(c[1], "0201", ctx) or rule.args.get("default_use")
    return {"system": kind["system"], "value": value, "use": use} if use else \
        {"system": kind["system"], "value": value}


def _compose_number(c: list[str]) -> str:
    country, area, local, ext = c[4], c[5], c[6], c[7]
    if not local:
        return ""
    parts = [f"+{country}" if country else "", f"({area})" if area else "", local]
    number = " ".join(p for p in parts if p)
    return f"{number} ext. {ext}" if ext else number


@datatype("PL", pure=True)
def location(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """PL as a display Reference: description, else point of care, room, bed, ... facility."""
    c = rep.decoded(9)
    if c[8]:
        return {"display": c[8]}
    display = ", ".join(p for p in (c[0], c[1], c[2], c[6], c[7], c[3]) if p)
    return {"display": display} if display else None
