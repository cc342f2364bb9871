"""Coded values: CWE/CE/CNE as CodeableConcept, with code systems named per HL7 table 0396."""

from __future__ import annotations

import re
from typing import Any, Final

from mappers.datatypes.vocabulary import bcp47_tag, in_hl7_table
from mappers.engine.context import Context
from mappers.engine.refs import RuleView
from mappers.hl7v2 import Repetition
from mappers.registry import datatype

_HL7_TABLE: Final = re.compile(r"HL7([0-9]{4})")  # [0-9]: \d takes any script's digits
CODING_SYSTEMS_TABLE: Final = "0396"
LANGUAGE_TABLE: Final = "0296"
BCP47: Final = "urn:ietf:bcp:47"


def coding_system(ctx: Context, name: str) -> str | None:
    """The FHIR system URI for a v2 coding system name (``HL70001``, ``LN``, ``SCT``)."""
    m = _HL7_TABLE.fullmatch(name)
    if m:
        return f"http://terminology.hl7.org/CodeSystem/v2-{m.group(1)}"
    found, uri = ctx.lookup(CODING_SYSTEMS_TABLE, name)
    return uri if found and isinstance(uri, str) else None


@datatype("CWE", "CE", "CNE", "CF", pure=True)
def codeable_concept(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """CWE as a CodeableConcept: original and alternate codings, plus the table's mapping."""
    c = rep.decoded(12)
    for at in (0, 3, 9):  # a FHIR code holds no runs of blanks, tabs or line breaks
        if not c[at].isprintable() or "  " in c[at]:
            c[at] = " ".join(c[at].split())
    codings: list[dict[str, Any]] = []
    for at in (0, 3, 9):  # CWE.1-3, alternate CWE.4-6, second alternate CWE.10-12
        code, display, name = c[at], c[at + 1], c[at + 2]
        if not code:
            continue
        system = coding_system(ctx, name) if name else None
        if system is None and at == 0 and rule.table is not None:
            system = ctx.tables[rule.table].source_system
        if system is not None and not in_hl7_table(system, code):
            system = None  # a site's code under an HL7 table's URL: kept, without the claim
        coding = {"system": system, "code": code, "display": display} if system else \
            {"code": code, "display": display}
        if not display:
            del coding["display"]
        codings.append(coding)
    overlay = ctx.overlay
    if overlay is not None and overlay.local_codes:
        _translate(ctx, c, codings, overlay.local_codes)
    first = c[0]
    if first and rule.table is not None:
        found, mapped = ctx.lookup(rule.table, first)
        if found and isinstance(mapped, dict) and not _same(mapped, codings[0]):
            codings.append(mapped)
    text = c[8] or (c[1] if not first else "")  # CWE.9 original text; else a display alone
    if not codings:
        return {"text": text} if text else None
    return {"coding": codings, "text": text} if text else {"coding": codings}


@datatype("language", pure=True)
def language(rep: Repetition, ctx: Context, rule: RuleView) -> dict[str, Any] | None:
    """A language (CWE: PID-15) as a CodeableConcept coded in BCP-47 only.

    FHIR binds every language element to BCP-47 (``urn:ietf:bcp:47``); a server rejects
    any other system there. So a code that is a BCP-47 tag (``en``, ``es-MX``) is kept as
    one, another goes through table 0296 (``ENG``, ``SPA``, ``English`` -> its tag), and
    one with no tag is kept as text only.
    """
    c = rep.decoded(12)
    codings: list[dict[str, Any]] = []
    named = ""
    for at in (0, 3, 9):  # CWE.1-3, alternate CWE.4-6, second alternate CWE.10-12
        code, display = c[at].strip(), c[at + 1].strip()
        named = named or display or code
        if not code:
            continue
        tag = bcp47_tag(code)
        if tag is not None:
            coding: dict[str, Any] = {"system": BCP47, "code": tag}
        else:
            found, mapped = ctx.lookup(LANGUAGE_TABLE, code)
            if not found and display:  # E^English: the name says which language
                found, mapped = ctx.lookup(LANGUAGE_TABLE, display)
            if not found or not isinstance(mapped, dict):
                continue
            coding = mapped
        if display:
            coding["display"] = display
        if not any(_same(coding, known) for known in codings):
            codings.append(coding)
    text = c[8] or ("" if codings else named)
    if not codings:
        return {"text": text} if text else None
    return {"coding": codings, "text": text} if text else {"coding": codings}


def _translate(ctx: Context, c: list[str], codings: list[dict[str, Any]],
               local: dict[tuple[str, str], dict[str, str]]) -> None:
    """Put the standard coding a sender profile gives for a local code first."""
    for at in (0, 3, 9):
        code = c[at]
        if not code:
            continue
        found = local.get((c[at + 2], code)) or local.get(("*", code))
        if found is None:
            continue
        if ctx.trace is not None:
            ctx.trace.append(("", ctx.location, "table",
                              f"profile local_codes: {c[at + 2] or '-'} {code} -> "
                              f"{found.get('system', '')} {found['code']}"))
        if not any(_same(found, known) for known in codings):
            codings.insert(0, dict(found))
        return


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("system") == b.get("system") and a.get("code") == b.get("code")
