"""HL7 v2 TS/DTM values (``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]``) as FHIR date/dateTime/instant.

The precision the sender gave is kept; an offset the sender gave is kept. A time without an
offset takes the offset of a default time zone (DST-aware), because FHIR forbids a time
without an offset. Minutes and seconds missing from a time are filled with zeros, as FHIR
needs them.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Kind = Literal["date", "dateTime", "instant"]

class TimestampError(ValueError):
    """A TS/DTM value that is not a valid timestamp; the text never includes the value."""


@lru_cache(maxsize=64)
def zone(name: str) -> dt.tzinfo:
    """The time zone called ``name``; ``ValueError`` when the name is unknown."""
    if name.upper() in {"UTC", "Z"}:
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def to_fhir(text: str, kind: Kind = "dateTime", default_tz: str = "UTC") -> str:
    """A TS/DTM value as a FHIR ``date``, ``dateTime`` or ``instant``; ``TimestampError``."""
    value = text.strip()
    offset = ""
    if len(value) > 5 and value[-5] in "+-":
        value, offset = value[:-5], value[-5:]
        if not (offset[1:].isdigit() and offset.isascii()):
            raise TimestampError(_FORMAT)
        if offset[1:3] > "14" or offset[3:] > "59" or (offset[1:3] == "14" and offset[3:] != "00"):
            raise TimestampError("time zone offset out of range")
        offset = f"{offset[:3]}:{offset[3:]}"
    fraction = ""
    if "." in value:
        value, fraction = value.split(".", 1)
        # isascii too: str.isdigit() takes "²", which FHIR's [0-9] does not
        if len(value) != 14 or not 1 <= len(fraction) <= 4 or not (
                fraction.isdigit() and fraction.isascii()):
            raise TimestampError(_FORMAT)
        fraction = "." + fraction
    size = len(value)
    if size not in _SIZES or not (value.isdigit() and value.isascii()):
        raise TimestampError(_FORMAT)
    year, month, day = value[:4], value[4:6], value[6:8]
    if year == "0000" or (month and not "01" <= month <= "12") or (day and not (
            "01" <= day and int(day) <= _days_in(int(year), int(month)))):
        raise TimestampError("not a calendar date")
    date = f"{year}-{month}-{day}" if day else f"{year}-{month}" if month else year
    if kind == "date" or (size <= 8 and kind == "dateTime"):
        return _checked(date, kind)
    if size == 10 and kind == "dateTime":
        size = 12  # FHIR needs minutes and seconds with an hour: they are filled with zeros
    if size <= 10:  # only an instant gets here without minutes
        raise TimestampError("an instant needs a time to the minute at least")
    hour, minute, second = value[8:10], value[10:12] or "00", value[12:14] or "00"
    if hour > "23" or minute > "59" or second > "59":
        raise TimestampError("time of day out of range")
    if not offset:
        offset = _offset_in(default_tz, int(year), int(month), int(day), int(hour), int(minute))
    return _checked(f"{date}T{hour}:{minute}:{second}{fraction}{offset}", kind)


# FHIR R4's own regular expressions for the three types: the last word on every output, so
# whatever slipped past the checks above is refused here instead of published.
_YEAR: Final = "([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_MONTH: Final = "(0[1-9]|1[0-2])"
_DAY: Final = "(0[1-9]|[1-2][0-9]|3[0-1])"
_TIME: Final = ("T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?"
                "(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))")
FHIR_PATTERNS: Final[dict[str, re.Pattern[str]]] = {
    "date": re.compile(f"{_YEAR}(-{_MONTH}(-{_DAY})?)?"),
    "dateTime": re.compile(f"{_YEAR}(-{_MONTH}(-{_DAY}({_TIME})?)?)?"),
    "instant": re.compile(f"{_YEAR}-{_MONTH}-{_DAY}{_TIME}"),
}


def _checked(out: str, kind: str) -> str:
    """``out`` when it matches FHIR's pattern for ``kind``; else ``TimestampError``."""
    if FHIR_PATTERNS[kind].fullmatch(out) is None:
        raise TimestampError(f"not a valid FHIR {kind}")
    return out


_FORMAT: Final = "not a TS/DTM value (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])"
_SIZES: Final = frozenset({4, 6, 8, 10, 12, 14})
_DAYS: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS[month]


@lru_cache(maxsize=4096)
def _offset_in(tz_name: str, y: int, mo: int, d: int, h: int, mi: int) -> str:
    """The UTC offset of local time ``y-mo-d h:mi`` in zone ``tz_name``, as ``+HH:MM``."""
    delta = dt.datetime(y, mo, d, h, mi, tzinfo=zone(tz_name)).utcoffset() or dt.timedelta()
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"
