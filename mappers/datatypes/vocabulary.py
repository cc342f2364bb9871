"""What the standard code systems contain, checked cheaply: HL7 v2 tables and UCUM units.

A FHIR server rejects a Coding that names a code system which does not define its code:
``v2-0063#DAU`` (a site's code under HL7 table 0063), ``UCUM#MG/DL`` (UCUM is
case-sensitive: ``mg/dL``). The datatype functions ask here before they name a system, so a
code the system does not define keeps its code and display but loses the claim.

Loaded once at import; every check is a dict or set lookup (a cached parse for units).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

HL7_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v2-"
TABLES_FILE: Final = Path(__file__).resolve().parents[1] / "specs" / "hl7-v2-tables-r4.tsv"


def _load_tables(path: Path) -> dict[str, frozenset[str]]:
    tables: dict[str, frozenset[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            table, *codes = line.split("\t")
            tables[table] = frozenset(codes)
    return tables


HL7_TABLES: Final = _load_tables(TABLES_FILE)


def in_hl7_table(system: str, code: str) -> bool:
    """False when ``system`` is an HL7 v2 table FHIR R4 defines and ``code`` is not in it.

    A table R4 does not define (``v2-0064``) cannot be checked: True, the sender's claim
    stands (a FHIR server reports such a system as unknown, not the code as wrong).
    """
    if not system.startswith(HL7_SYSTEM):
        return True
    codes = HL7_TABLES.get(system[len(HL7_SYSTEM):])
    return codes is None or code in codes


# ISO 639-1: the two-letter primary language subtags of BCP-47 (IANA registry, 184 codes).
ISO_639_1: Final = frozenset("""
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy
da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu
hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb
lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om
or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw
ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
""".split())
_TAG: Final = re.compile(r"([A-Za-z]{2})(?:[-_]([A-Za-z]{2}|[0-9]{3}))?")


def bcp47_tag(code: str) -> str | None:
    """``code`` as a BCP-47 tag FHIR accepts (``en``, ``es-MX``), or None.

    Only an ISO 639-1 language, optionally with a region (two letters or three digits):
    cased as the registry writes them. Three-letter codes (ISO 639-2 ``eng``, table 0296's
    ``ENG``) are not BCP-47 where a two-letter code exists; table 0296 maps those.
    """
    m = _TAG.fullmatch(code)
    if m is None or m.group(1).lower() not in ISO_639_1:
        return None
    region = m.group(2)
    return f"{m.group(1).lower()}-{region.upper()}" if region else m.group(1).lower()


# UCUM, checked by its grammar over a small set of units (not the whole table): a unit
# outside it is simply not claimed as UCUM. Atoms that take metric prefixes:
_METRIC: Final = frozenset(
    "m s g rad K C cd mol sr Hz N Pa J W A V F Ohm S Wb Cel T H lm lx Bq Gy Sv l L ar t bar "
    "u eV eq osm kat U [iU] [IU] cal [cal] m[Hg] m[H2O] bit By B Ci R g% [CFU] gf dyn erg P "
    "St Mx G Oe Gb Lmb ph RAD REM".split())
_ATOMS: Final = _METRIC | frozenset(
    "min h d a wk mo % [ppm] [ppb] [ppth] [pptr] [degF] [degR] [in_i] [ft_i] [yd_i] [mi_i] "
    "[lb_av] [oz_av] [gr] [drp] [pH] [HPF] [LPF] [arb'U] [USP'U] [PFU] [FFU] [BAU] [AU] "
    "[ELU] [EU] [Lf] [pi] deg ' '' gon circ sph [fth_i] [foz_us] [pt_us] [qt_us] [gal_us] "
    "[tsp_us] [tbs_us] [cup_us] [foz_br] [pt_br] [gal_br] [mesh_i] [Ch] [diop] [hp'_X] "
    "[hp'_C] [kp_X] [kp_C] [GPL'U] [MPL'U] [APL'U] [beth'U] [todd'U] [mclg'U] [tb'U] [knk'U] "
    "[IR] [S] [HPF] [iU] [dr_av] [sc_ap] [dr_ap] [oz_ap] [lb_ap] [min_us] [fdr_us] [crd_us] "
    "[mu_0] [eps_0] [e] [m_e] [m_p] [G] [g] [c] [h] [k] [ly] pc Ky Gal st".split())
_PREFIXES: Final = frozenset("Y Z E P T G M k h da d c m u n p f a z y".split())
_COMPONENT: Final = re.compile(
    r"(?P<unit>10[*^]|[^.\/\[\]{}()0-9+-]*(?:\[[^\]]*\])?)(?P<exp>[+-]?[0-9]+)?"
    r"(?P<note>\{[^{}]*\})?")
# Units as v2 senders spell them (lower-cased) -> the UCUM code they mean.
_SPELLINGS: Final = {
    "mmhg": "mm[Hg]", "mm hg": "mm[Hg]", "cmh2o": "cm[H2O]", "bpm": "/min",
    "beats/min": "/min", "breaths/min": "/min", "degf": "[degF]", "deg f": "[degF]",
    "°f": "[degF]", "f°": "[degF]", "degc": "Cel", "deg c": "Cel", "°c": "Cel", "c°": "Cel",
    "cel": "Cel", "mg/dl": "mg/dL", "g/dl": "g/dL", "ug/dl": "ug/dL", "mcg/dl": "ug/dL",
    "ml": "mL", "dl": "dL", "meq/l": "meq/L", "mmol/l": "mmol/L", "umol/l": "umol/L",
    "mg/l": "mg/L", "ng/ml": "ng/mL", "pg/ml": "pg/mL", "ug/ml": "ug/mL", "mcg/ml": "ug/mL",
    "iu/l": "[IU]/L", "iu/ml": "[IU]/mL", "miu/ml": "m[IU]/mL", "uiu/ml": "u[IU]/mL",
    "u/l": "U/L", "units/l": "U/L", "iu": "[IU]", "units": "U", "k/ul": "10*3/uL",
    "k/mm3": "10*3/uL", "x10e3/ul": "10*3/uL", "x10^3/ul": "10*3/uL", "10^3/ul": "10*3/uL",
    "thou/ul": "10*3/uL", "m/ul": "10*6/uL", "x10e6/ul": "10*6/uL", "x10^6/ul": "10*6/uL",
    "10^6/ul": "10*6/uL", "mil/ul": "10*6/uL", "fl": "fL", "sec": "s", "secs": "s",
    "seconds": "s", "hr": "h", "hrs": "h", "hours": "h", "mins": "min", "minutes": "min",
    "day": "d", "days": "d", "week": "wk", "weeks": "wk", "month": "mo", "months": "mo",
    "yr": "a", "yrs": "a", "year": "a", "years": "a", "lb": "[lb_av]", "lbs": "[lb_av]",
    "oz": "[oz_av]", "in": "[in_i]", "inch": "[in_i]", "inches": "[in_i]", "ft": "[ft_i]",
    "gm": "g", "gms": "g", "grams": "g", "mcg": "ug", "kgs": "kg", "tab": "{tbl}",
    "tabs": "{tbl}", "tablet": "{tbl}", "tablets": "{tbl}", "ratio": "{ratio}",
    "percent": "%", "mm/hr": "mm/h", "ml/min/1.73m2": "mL/min/{1.73_m2}",
    "ml/min/1.73 m2": "mL/min/{1.73_m2}", "kg/m^2": "kg/m2",
}
_OPERATOR: Final = re.compile(r"[./](?![^{]*\})")  # "." and "/", not inside {annotations}
_UCUM_SEEN: dict[str, str | None] = {}


def ucum_code(unit: str) -> str | None:
    """The UCUM code a unit as sent means: a known v2 spelling's code (``MG/DL`` ->
    ``mg/dL``, ``mmHg`` -> ``mm[Hg]``, ``K/uL`` -> ``10*3/uL``, not kelvin), else the unit
    itself when it is valid UCUM, else None (not UCUM)."""
    if unit in _UCUM_SEEN:
        return _UCUM_SEEN[unit]
    found = _SPELLINGS.get(unit.lower()) or (unit if is_ucum(unit) else None)
    if len(_UCUM_SEEN) < 4096:  # units are few; a flood of odd ones is not kept
        _UCUM_SEEN[unit] = found
    return found


def is_ucum(code: str) -> bool:
    """True when ``code`` is a UCUM expression over the units known here (case-sensitive)."""
    if not code or " " in code or "(" in code:
        return False
    text = code[1:] if code.startswith("/") else code
    return all(_component(part) for part in _OPERATOR.split(text))


def _component(part: str) -> bool:
    m = _COMPONENT.fullmatch(part)
    if m is None:
        return False
    unit, note = m.group("unit"), m.group("note")
    if not unit:  # a plain number (24 in mL/24.h... as "/24") or an annotation alone
        return bool(note) or (m.group("exp") is not None and m.group("exp")[0] not in "+-")
    if unit in _ATOMS or unit in ("10*", "10^"):
        return True
    for size in (1, 2):
        if unit[:size] in _PREFIXES and unit[size:] in _METRIC:
            return True
    return False
