"""The trial engine on sample messages: what a changed profile would change, counted.

The source is an in-memory stand-in for the spool (listing and bodies); the profiles,
the mapper and the diff are the real ones.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from gateway.spool import MessageFilter, MessageInfo, StoredBody
from gateway.trial import (
    TrialError,
    Window,
    make_candidate,
    parse_since,
    run_trial,
)
from mappers.errors import ProfileError
from mappers.profiles import ProfileSet
from tests.support import MESSAGES, PROFILES, SAMPLES, with_control_id

SUNLAB = (MESSAGES / "oru_r01.hl7").read_bytes().replace(b"\n", b"\r").strip(b"\r") + b"\r"
A01 = (SAMPLES / "adt_a01.hl7").read_bytes().split(b"\n\n")[0].replace(b"\n", b"\r")
LIVE = ProfileSet.load(PROFILES)
SUNLAB_YAML = (PROFILES / "sunlab.yaml").read_text()
# H (high) read as L: every Observation flagged H changes its interpretation
FLIPPED = SUNLAB_YAML.replace("    LOWISH: L\n", "    LOWISH: L\n    H: L\n")


def info(row_id: int, sender: str, control_id: str, received: float = 1000.0
         ) -> MessageInfo:
    return MessageInfo(id=row_id, received_at=received, listener="lab", peer="p",
                       sender=sender, control_id=control_id, message_type="ORU^R01",
                       status="published", conflict=False, attempts=1, last_error=None,
                       published_at=None, kafka_topic=None, kafka_partition=None,
                       kafka_offset=None, summary="{}", replays=0, size=0, charset="utf-8",
                       timezone="UTC")


class FakeSpool:
    """Rows and bodies in memory, listed newest first like ``Spool.find``."""

    def __init__(self, rows: list[tuple[MessageInfo, bytes]]) -> None:
        self.rows = {r.id: (r, raw) for r, raw in rows}
        self.bodies_read: list[int] = []

    async def find(self, where: MessageFilter, *, limit: int = 100,
                   before_id: int | None = None) -> list[MessageInfo]:
        rows = sorted((r for r, _ in self.rows.values()), key=lambda r: -r.id)
        rows = [r for r in rows if (before_id is None or r.id < before_id)
                and (where.since is None or r.received_at >= where.since)]
        return rows[:limit]

    async def body(self, row_id: int) -> StoredBody | None:
        self.bodies_read.append(row_id)
        return StoredBody(self.rows[row_id][1], b"")


def lab_rows(n: int, start: int = 1) -> list[tuple[MessageInfo, bytes]]:
    return [(info(i, "SUNLAB|RIVERSIDE^2.16.840.1.113883.3.7777^ISO", f"LAB-{i}",
                  received=1000.0 + i), with_control_id(SUNLAB, f"LAB-{i}"))
            for i in range(start, start + n)]


def test_a_changed_code_counts_the_element_in_every_message_it_changes() -> None:
    adt = (info(99, "EPICADT|GOODHEALTH", "ADT-1"), A01)
    source = FakeSpool([*lab_rows(3), adt])
    candidate = make_candidate(FLIPPED, LIVE, label="sunlab.yaml", origin=str(PROFILES))
    assert candidate.target == "sunlab.yaml" and candidate.replaces is not None
    report = asyncio.run(run_trial(candidate, source, Window()))
    data = report.as_json()
    # the ADT from another sender is not tried, not even read
    assert 99 not in source.bodies_read and data["tried"] == 3
    assert data["changed"] == 3 and data["unchanged"] == 0 and data["now_failing"] == 0
    elements = {e["element"]: e for e in data["elements"]}
    flag = elements["Observation.interpretation.coding.code"]
    assert flag["messages"] == 3 and flag["changes"] >= 3
    example = next(x for x in data["examples"]
                   if x["element"] == "Observation.interpretation.coding.code")
    assert example["before"] == "H" and example["after"] == "L"
    assert example["control_id"].startswith("LAB-")
    assert "tried 3, changed 3" in report.counts()


def test_the_same_profile_changes_nothing() -> None:
    candidate = make_candidate(SUNLAB_YAML, LIVE, origin=str(PROFILES))
    report = asyncio.run(run_trial(candidate, FakeSpool(lab_rows(2)), Window()))
    assert (report.tried, report.changed, report.as_json()["elements"]) == (2, 0, [])


def test_last_and_since_choose_the_newest_messages() -> None:
    source = FakeSpool(lab_rows(30))
    candidate = make_candidate(FLIPPED, LIVE, origin=str(PROFILES))
    newest = asyncio.run(run_trial(candidate, source, Window(last=5)))
    assert newest.tried == 5 and sorted(source.bodies_read) == list(range(26, 31))
    source.bodies_read.clear()
    recent = asyncio.run(run_trial(candidate, source, Window(since=1000.0 + 21)))
    assert recent.tried == 10 and min(source.bodies_read) == 21


def test_new_issues_and_unmapped_fields_are_reported() -> None:
    # NTE ignored: its field is no longer reported unmapped
    ignore_nte = SUNLAB_YAML.replace("ignore_segments: [ZXX]", "ignore_segments: [ZXX, NTE]")
    candidate = make_candidate(ignore_nte, LIVE, origin=str(PROFILES))
    report = asyncio.run(run_trial(candidate, FakeSpool(lab_rows(2)), Window())).as_json()
    assert report["unmapped"] == {"new": [], "gone": [{"field": "NTE-2", "messages": 2}]}
    assert report["changed"] == 2
    # a patient key no repetition fits: the Bundle is the same, a new issue is not
    nowhere = SUNLAB_YAML.replace("patient_key: {authority: RIVERSIDE, type: MR}",
                                  "patient_key: {authority: NOWHERE}")
    candidate = make_candidate(nowhere, LIVE, origin=str(PROFILES))
    report = asyncio.run(run_trial(candidate, FakeSpool(lab_rows(2)), Window())).as_json()
    assert report["issues"]["new"] == [{"code": "patient-key", "location": "PID-3",
                                        "messages": 2}]
    assert report["elements"] == [] and report["changed"] == 2


def test_a_message_that_now_fails_is_named_by_row_and_control_id() -> None:
    # the Patient keyed on PID-2, which the sample leaves empty: the mapper refuses it
    pid2 = SUNLAB_YAML.replace("patient_key: {authority: RIVERSIDE, type: MR}",
                               "patient_key: {field: PID-2}")
    candidate = make_candidate(pid2, LIVE, origin=str(PROFILES))
    report = asyncio.run(run_trial(candidate, FakeSpool(lab_rows(2)), Window())).as_json()
    assert report["now_failing"] == 2 and report["changed"] == 2
    assert report["elements"] == []  # no Bundle to compare with
    first, _ = report["failures"]
    assert (first["id"], first["control_id"]) == (2, "LAB-2")
    assert first["error"].startswith("RequiredFieldMissing at PID-2")
    # putting it back is "now mapping" in the other direction
    back = make_candidate(SUNLAB_YAML, candidate.proposed, origin=str(PROFILES))
    fixed = asyncio.run(run_trial(back, FakeSpool(lab_rows(1)), Window())).as_json()
    assert fixed["now_mapping"] == 1 and fixed["now_failing"] == 0


def test_a_bad_profile_names_file_line_and_field() -> None:
    broken = SUNLAB_YAML.replace('"0078":', '"9999":')
    with pytest.raises(ProfileError, match=r"^mine\.yaml:\d+: codes\.9999: unknown code table"):
        make_candidate(broken, LIVE, label="mine.yaml")
    with pytest.raises(ProfileError, match="empty"):
        make_candidate("  \n", LIVE, label="mine.yaml")


def test_a_new_profile_is_added_and_clashes_are_refused() -> None:
    new = "profile: newlab\nmatch: {application: NEWLAB}\n"
    candidate = make_candidate(new, LIVE, origin=str(PROFILES))
    assert candidate.target == "newlab.yaml" and candidate.replaces is None
    assert set(candidate.proposed.names()) == {"sunlab", "wardvitals", "newlab"}
    same_match = "profile: other\nmatch: {application: SUNLAB, facility: RIVERSIDE}\n"
    with pytest.raises(ProfileError, match="same match"):
        make_candidate(same_match, LIVE, origin=str(PROFILES))
    # a new profile whose file name is taken by another profile is refused, not overwritten
    live = ProfileSet.from_sources({"other.yaml": "profile: foo\nmatch: {application: A}\n"})
    with pytest.raises(TrialError, match="holds another profile"):
        make_candidate("profile: other\nmatch: {application: B}\n", live)


def test_window_and_since() -> None:
    assert parse_since("24h", now=100_000.0) == 100_000.0 - 86_400
    assert parse_since("2024-05-01T08:00:00Z") == 1714550400.0
    with pytest.raises(TrialError, match="duration"):
        parse_since("yesterday")
    with pytest.raises(TrialError, match="between 1 and"):
        Window(last=0)
    candidate = make_candidate(FLIPPED, LIVE, origin=str(PROFILES))
    assert Window().wants(candidate, "SUNLAB^X|RIVERSIDE^2.16")
    assert not Window().wants(candidate, "SUNLAB|ELSEWHERE")
    assert Window(sender="EPICADT^GOODHEALTH").wants(candidate, "EPICADT|GOODHEALTH")
    assert Window(sender="EPICADT").wants(candidate, "EPICADT|ANY")
    assert Window().describe(candidate) == "SUNLAB^RIVERSIDE"
    assert replace(Window(), last=3).last == 3
