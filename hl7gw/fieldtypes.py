"""Field types shared by every settings model: a known charset, a known IANA time zone.

The gateway config (listeners, senders, ``default_timezone``) and the sender profiles
take the same two kinds of value; checking them once here keeps the checks and their
messages the same everywhere. Both keep the text as written (what is shown back).
"""

from __future__ import annotations

import codecs
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator


def check_charset(value: str) -> str:
    """``value`` when Python knows the codec, else ``ValueError`` naming it."""
    try:
        codecs.lookup(value)
    except LookupError as exc:
        raise ValueError(f"unknown charset {value!r}") from exc
    return value


def check_timezone(value: str) -> str:
    """``value`` when it is an IANA zone this machine knows, else ``ValueError`` naming it."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                         "Europe/Paris)") from exc
    return value


Charset = Annotated[str, AfterValidator(check_charset)]
TimeZone = Annotated[str, AfterValidator(check_timezone)]
