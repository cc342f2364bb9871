"""Single-valued datatypes: strings, codes, numbers and timestamps."""

from __future__ import annotations

import re
from typing import Any, Final

from mappers.engine.context import Context
from mappers.engine.paths import compact
from mappers.engine.refs import RuleView
from mappers.hl7v2 import Repetition
from mappers.registry import datatype
from mappers.timestamps import TimestampError, to_fhir

_INTEGER: Final = re.compile(r"[+-]?\d{1,9}")
_DECIMAL: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


@datatype("ST", "TX", "FT", "SI")
def string(rep: Repetition, ctx: Context, rule: RuleView) -> str | None:
    """ST: the decoded text, trimmed (FHIR strings should not start or end with blanks)."""
    return rep.component(1).strip() or None


@datatype("code", "ID", "IS", pure=True)
def code(rep: Repetition, ctx: Context, rule: RuleView) -> Any:
    """A coded value (ID/IS or the code of a CWE) as a FHIR code, or mapped through a table."""
    value = " ".join(rep.component(1).split())
    if not value:
        return None
    if rule.table is None:
        return value
    return ctx.lookup(rule.table, value)[1]


# the least value of each FHIR integer type (unsignedInt: a count, positiveInt: a duration)
_INTEGER_MIN: Final = {"integer": None, "unsignedInt": 0, "positiveInt": 1}


@datatype("NM", args={"as": ("integer", "unsignedInt", "positiveInt", "decimal")})
def number(rep: Repetition, ctx: Context, rule: RuleView) -> int | float | None:
    """NM as a FHIR integer (default), unsignedInt, positiveInt or decimal; else an issue."""
    text = rep.component(1).strip()
    kind = rule.args.get("as", "integer")
    if kind != "decimal":
        if _INTEGER.fullmatch(text):
            value = int(text)
            least = _INTEGER_MIN.get(str(kind))
            if least is None or value >= least:
                return value
            ctx.issue("invalid-value", f"not a {kind} (at least {least}); left out")
            return None
        ctx.issue("invalid-value", "not an integer; left out")
        return None
    if _DECIMAL.fullmatch(text):
        return float(text)
    ctx.issue("invalid-value", "not a decimal number; left out")
    return None


@datatype("TS", "DTM", "DT", args={"as": ("date", "dateTime", "instant")})
def timestamp(rep: Repetition, ctx: Context, rule: RuleView) -> str | None:
    """TS/DTM/DT as a FHIR date, dateTime (default) or instant, keeping precision and offset."""
    kind = rule.args.get("as", "dateTime")
    text = rep.component(1)
    key = (text, str(kind))
    found = ctx.times.get(key)
    if found is not None:
        return found
    try:
        found = ctx.times[key] = to_fhir(text, kind, ctx.default_tz)  # type: ignore[arg-type]
    except TimestampError as exc:
        ctx.issue("invalid-value", f"{exc}; left out")
        return None
    return found


@datatype("identifier", args={"system": str, "type": str})
def identifier(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """A plain string id (like PID-19 SSN) as an Identifier with a fixed system and type."""
    value = rep.component(1).strip()
    if not value:
        return None
    out: dict[str, Any] = {"value": value}
    system = rule.args.get("system")
    if isinstance(system, str):
        out["system"] = system
    type_code = rule.args.get("type")
    if isinstance(type_code, str):
        found, coding = ctx.lookup("0203", type_code)
        out["type"] = {"coding": [coding]} if found else {"text": type_code}
    return compact(out)
