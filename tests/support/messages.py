"""One message in every encoding the gateway must read, for the same-bytes-everywhere tests.

The sample ADT^A01 with the family name ``Gagné`` (non-ASCII, so a wrong charset shows),
PV1-44 without an offset (so the time zone in force shows in Encounter.period.start) and
original-mode acknowledgement. Each variant has its own control id, so all can be sent to
one gateway. ``PROFILE_YAML`` is a profile for MSH-3 ``GAGNE`` that sets charset and zone.
"""

from __future__ import annotations

from typing import Any, Final

from tests.support import SAMPLES

_SAMPLE: Final = (SAMPLES / "adt_a01.hl7").read_bytes().decode().split("\n\n")[0].strip("\n")

PROFILE_YAML: Final = """\
profile: gagne
description: a sender whose MSH-18 says UTF-8 but who sends Latin-1, in Montreal
match: {application: GAGNE}
timezone: America/Montreal
charset: latin-1
"""


def _text(application: str, control_id: str, msh18: str) -> str:
    """The sample as text with MSH-3, MSH-10, MSH-18 set and the edits above."""
    segments = _SAMPLE.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    msh = segments[0].split("|")
    msh += [""] * (18 - len(msh))
    msh[2], msh[9], msh[14], msh[15], msh[17] = application, control_id, "", "", msh18
    segments[0] = "|".join(msh)
    out = []
    for seg in segments:
        if seg.startswith("PID|"):
            seg = seg.replace("Everyman^Adam", "Gagné^Adam", 1)
        if seg.startswith("PV1|"):
            seg = seg.replace("|20240115102500-0500", "|20240115102500")
        out.append(seg)
    return "\r".join(out) + "\r"


GAGNE_LATIN1: Final = _text("ADTSYS", "GAGNE-L1", "8859/1").encode("latin-1")


def gagne_variants() -> dict[str, bytes]:
    """name -> raw bytes; each one maps to a Patient named Gagné."""
    return {
        "latin1-msh18": GAGNE_LATIN1,
        "utf8-bom": b"\xef\xbb\xbf" + _text("ADTSYS", "GAGNE-U8", "").encode(),
        "utf16-bom": _text("ADTSYS", "GAGNE-U16", "UNICODE UTF-16").encode("utf-16"),
        "utf16be-declared": _text("ADTSYS", "GAGNE-U16BE", "UNICODE UTF-16").encode(
            "utf-16-be"),
        # MSH-18 says UTF-8, the bytes are Latin-1: only the profile's charset reads them
        "profile": _text("GAGNE", "GAGNE-P", "UNICODE UTF-8").encode("latin-1"),
    }


def patient_family(bundle: dict[str, Any]) -> str:
    """The first family name of the Bundle's Patient."""
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    return str(patient["name"][0]["family"])


def encounter_start(bundle: dict[str, Any]) -> str:
    """Encounter.period.start: shows the time zone a message was mapped with."""
    encounter = next(e["resource"] for e in bundle["entry"]
                     if e["resource"]["resourceType"] == "Encounter")
    return str(encounter["period"]["start"])
