"""Composite datatype writers: people (XCN), places (PL), attachments (ED) and SN.

Registered in :data:`mappers.outbound.writers.WRITERS` by the ``writer`` decorator when
``mappers.outbound.writers`` imports this module.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from mappers.outbound.encoding import FieldValue
from mappers.outbound.writers import (
    Writing,
    authority,
    number,
    one,
    text_of,
    write_tx,
    writer,
)


def _practitioner(value: Any, ctx: Writing) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the resource a reference names, if in the Bundle; the reference itself)."""
    if not isinstance(value, dict):
        return None, {}
    for role in ("individual", "actor"):  # a participant or performer: its person
        if isinstance(value.get(role), dict):
            value = value[role]
            break
    if "resourceType" in value:
        return value, {}
    return (ctx.resolve(value) if value.get("reference") else None), value


@writer("XCN")
def write_xcn(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
              ) -> FieldValue | None:
    """A Reference to a person (or the Practitioner itself) as XCN: id, name, authority."""
    resource, ref = _practitioner(value, ctx)
    ident: dict[str, Any] = {}
    name: dict[str, Any] = {}
    if resource is not None:
        idents = resource.get("identifier") or []
        ident = idents[0] if idents and isinstance(idents[0], dict) else {}
        names = resource.get("name") or []
        name = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) \
            else {}
    if not ident and isinstance(ref.get("identifier"), dict):
        ident = ref["identifier"]
    hd = authority(ident.get("system"), "", ctx) if ident.get("value") else []
    if name:
        given = [str(g) for g in name.get("given") or []]
        prefix = [str(p) for p in name.get("prefix") or []]
        suffix = [str(s) for s in name.get("suffix") or []]
        parts: list[str | list[str]] = [
            str(ident.get("value") or ""), str(name.get("family") or name.get("text") or ""),
            given[0] if given else "", " ".join(given[1:]), suffix[0] if suffix else "",
            " ".join(prefix)]
    else:
        display = text_of(ref.get("display")) or ""
        if not (ident.get("value") or display):
            return None
        parts = [str(ident.get("value") or ""), display, "", "", "", ""]
    return one(*parts, "", "", hd) if hd else one(*parts)


@writer("PL")
def write_pl(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
             ) -> FieldValue | None:
    """A Location (or a Reference to one) as PL: its name as the description (PL-9)."""
    resource, ref = _practitioner(value, ctx)
    name = (resource or {}).get("name") or ref.get("display")
    return one("", "", "", "", "", "", "", "", str(name)) if name else None


_ED_TYPES: Final = {"application": "AP", "text": "TEXT", "image": "IM", "audio": "AU",
                    "video": "VIDEO", "multipart": "multipart"}


@writer("ED")
def write_ed(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
             ) -> FieldValue | None:
    """An Attachment with base64 data as ED: ``^TYPE^SUBTYPE^Base64^data``."""
    if not isinstance(value, dict) or not value.get("data"):
        return None
    mime = str(value.get("contentType") or "application/octet-stream").split(";")[0].strip()
    top, _, sub = mime.partition("/")
    return one("", _ED_TYPES.get(top.lower(), "AP"), sub.upper(), "Base64",
               "".join(str(value["data"]).split()))


@writer("attachment_text", formatted=True)
def write_attachment_text(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
                          ) -> FieldValue | None:
    """A text/plain Attachment's data, decoded (UTF-8, else its charset), as TX lines."""
    if not isinstance(value, dict) or not value.get("data"):
        return None
    content_type = str(value.get("contentType") or "")
    charset = "utf-8"
    for param in content_type.split(";")[1:]:
        key, _, val = param.strip().partition("=")
        if key.lower() == "charset" and val:
            charset = val.strip('"')
    try:
        text = base64.b64decode(str(value["data"]), validate=False).decode(charset)
    except (binascii.Error, LookupError, UnicodeDecodeError):
        return None
    return write_tx(text.rstrip("\n"), ctx, args, table)


@writer("SN")
def write_sn(value: Any, ctx: Writing, args: dict[str, Any], table: str | None
             ) -> FieldValue | None:
    """A Quantity with a comparator (``>^60``), a Ratio (``^1^:^128``) or a Range
    (``^10^-^20``) as SN."""
    if not isinstance(value, dict):
        return None
    if "numerator" in value or "denominator" in value:
        num = number((value.get("numerator") or {}).get("value"))
        den = number((value.get("denominator") or {}).get("value"))
        return one("", num or "", ":", den or "") if num or den else None
    if "low" in value or "high" in value:
        low = number((value.get("low") or {}).get("value"))
        high = number((value.get("high") or {}).get("value"))
        return one("", low or "", "-", high or "") if low or high else None
    amount = number(value.get("value"))
    return one(str(value.get("comparator") or ""), amount) if amount is not None else None
