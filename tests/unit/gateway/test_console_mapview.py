"""Mapping for the console: profile choice, time zone fallback, one-line errors."""

from __future__ import annotations

import pytest

from gateway.console.mapview import AUTO, NONE, map_text, parse_summary, pick_profile
from mappers.errors import ProfileError
from mappers.profiles import ProfileSet
from tests.support import SAMPLES

A01 = (SAMPLES / "adt_a01.hl7").read_bytes().decode().split("\x1c")[0].strip("\x0b")
PROFILES = ProfileSet.load(SAMPLES / "profiles")


def sunlab(text: str) -> str:
    return text.replace("|EPICADT|GOODHEALTH|", "|SUNLAB|RIVERSIDE|", 1)


def test_auto_picks_by_msh_like_the_gateway() -> None:
    assert pick_profile(PROFILES, A01, AUTO) is None
    chosen = pick_profile(PROFILES, sunlab(A01), AUTO)
    assert chosen is not None and chosen.name == "sunlab"
    assert pick_profile(PROFILES, sunlab(A01), NONE) is None
    with pytest.raises(ProfileError, match="no profile named"):
        pick_profile(PROFILES, A01, "nope")


def test_the_profiles_zone_wins_over_the_fallback() -> None:
    view = map_text(sunlab(A01), profile=PROFILES.get("sunlab"), fallback_tz="UTC",
                    explain=True)
    assert view.error is None and view.profile == "sunlab"
    assert view.timezone == "America/Chicago"
    assert view.bundle is not None and view.bundle["resourceType"] == "Bundle"
    assert view.explanation and "Patient" in view.explanation
    plain = map_text(A01, profile=None, fallback_tz="Europe/Vienna")
    assert plain.timezone == "Europe/Vienna" and plain.profile is None


def test_a_refused_message_is_one_line_naming_the_place() -> None:
    view = map_text("MSH|^~\\&|A|B|C|D|2024||ADT^A01|X|P|2.5\rEVN|A01", profile=None,
                    fallback_tz="UTC")
    assert view.bundle is None and view.error is not None
    assert "\n" not in view.error and " at PID" in view.error
    assert view.as_json()["error"] == view.error


def test_summaries_parse_whatever_was_stored() -> None:
    assert parse_summary('{"issues": [{"code": "x"}], "unmapped": ["PV1-44"], '
                         '"profile": "sunlab"}') == {
        "issues": [{"code": "x"}], "unmapped": ["PV1-44"], "profile": "sunlab"}
    empty = {"issues": [], "unmapped": [], "profile": None}
    assert parse_summary("{}") == empty  # a row from before profiles
    assert parse_summary('{"profile": 3}') == empty
    assert parse_summary("not json") == empty
