"""FHIR date/dateTime/instant -> HL7 v2 DTM, keeping the precision and the offset given.

``2024-03-12`` stays a date (``20240312``); ``2024-03-12T08:15:00-04:00`` becomes
``20240312081500-0400``; ``Z`` is ``+0000``. With a destination time zone, a time with an
offset is moved into that zone (its offset written); a date alone never moves.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from mappers.errors import OutboundError
from mappers.timestamps import zone

_FHIR_TIME: Final = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?")


def to_dtm(value: str, *, timezone: str | None = None, date_only: bool = False) -> str:
    """A FHIR time as DTM; ``OutboundError`` naming the problem (not the value) if malformed."""
    m = _FHIR_TIME.fullmatch(value.strip())
    if m is None:
        raise OutboundError("a date/time element is not a FHIR date, dateTime or instant")
    y, mo, d = m.group("y"), m.group("m"), m.group("d")
    if date_only or m.group("H") is None:
        return y + (mo or "") + (d or "")
    tz = m.group("tz")
    hh, mm, ss, frac = m.group("H"), m.group("M"), m.group("S"), m.group("f") or ""
    if tz is None:  # FHIR requires an offset with a time; keep what came
        return f"{y}{mo}{d}{hh}{mm}{ss or ''}{frac if ss else ''}"
    offset = dt.timedelta(0) if tz == "Z" else (1 if tz[0] == "+" else -1) * dt.timedelta(
        hours=int(tz[1:3]), minutes=int(tz[4:6]))
    stamp = dt.datetime(int(y), int(mo), int(d), int(hh), int(mm), int(ss or 0),
                        tzinfo=dt.timezone(offset))
    if timezone is not None:
        stamp = stamp.astimezone(zone(timezone))
    text = stamp.strftime("%Y%m%d%H%M") + (stamp.strftime("%S") + frac if ss else "")
    return text + _offset(stamp)


def _offset(stamp: dt.datetime) -> str:
    delta = stamp.utcoffset() or dt.timedelta(0)
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def now_dtm(stamp: dt.datetime, timezone: str | None = None) -> str:
    """A Python datetime (naive = UTC) as DTM to the second, with its offset."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    if timezone is not None:
        stamp = stamp.astimezone(zone(timezone))
    return stamp.strftime("%Y%m%d%H%M%S") + _offset(stamp)
