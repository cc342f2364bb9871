"""The live profile set: load, reload (a bad edit keeps the last good set), the folder
watcher, the snapshot the mapping workers rebuild from, and the precedence rules intake
and mapping apply with a profile (profile > sender entry > MSH-18 / gateway default)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from gateway.config import ListenerSettings, ProfilesSettings, SenderSettings
from gateway.intake import Intake
from gateway.mapping import MappingPool, map_batch, map_one, profiles_for
from gateway.metrics import GatewayMetrics
from gateway.mllp.client import split_messages
from gateway.profiles import ProfileStore
from gateway.spool import MessageFilter, Spool
from mappers.errors import ProfileError
from mappers.profiles import EMPTY_PROFILES, ProfileSet
from tests.support import SAMPLES

SAMPLE = split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0]
# ALPHA's A01 in original mode, PV1-44 without an offset (the zone decides it), a ZPD.
ALPHA = (SAMPLE.replace(b"EPICADT", b"ALPHA").replace(b"|AL|NE|", b"|||")
         .replace(b"|20240115102500-0500\r", b"|20240115102500\r") + b"ZPD|1|PLATINUM\r")
BRAVO = ALPHA.replace(b"ALPHA", b"BRAVO")

PROFILE = """\
profile: alpha
description: the ALPHA system
match: {application: ALPHA}
timezone: Europe/Vienna
identifier_systems: {EPIX: "https://alpha.example/sid/epix"}
"""
# Line 4 names an unknown key: the error must say alpha.yaml:4: and the key.
BROKEN = """\
profile: alpha
match: {application: ALPHA}
timezone: Europe/Vienna
identifier_sistems: {EPIX: "https://alpha.example/sid/epix"}
"""


def store(directory: Path | None, interval: float = 0.0) -> tuple[ProfileStore, GatewayMetrics]:
    metrics = GatewayMetrics()
    return ProfileStore(ProfilesSettings(dir=directory, watch_interval_s=interval),
                        metrics), metrics


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def write(path: Path, text: str) -> None:
    """Write and move the mtime on, so a rewrite of equal size is still a change."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


async def until(predicate: Callable[[], bool], within: float = 10) -> None:
    """Poll ``predicate`` until it holds; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "profiles"
    d.mkdir()
    write(d / "alpha.yaml", PROFILE)
    return d


def test_without_a_folder_the_set_is_empty_and_nothing_is_watched() -> None:
    s, metrics = store(None, interval=0.01)
    s.load()
    assert s.current is EMPTY_PROFILES
    assert s.generation == 0 and s.snapshot() == (0, {})
    assert s.status() == {"dir": None, "loaded": [], "generation": 0, "last_error": None}
    assert sample(metrics, "hl7gw_profiles_loaded") == 0
    asyncio.run(asyncio.wait_for(s.watch(), 1))  # returns at once: nothing to poll


def test_load_publishes_the_set_generation_and_gauges(folder: Path) -> None:
    s, metrics = store(folder)
    s.load()
    assert s.current.names() == ["alpha"] and s.generation == 1
    assert s.last_error is None and s.loaded_at is not None
    assert sample(metrics, "hl7gw_profiles_loaded") == 1
    assert sample(metrics, "hl7gw_profiles_generation") == 1
    assert s.status() == {"dir": str(folder), "loaded": ["alpha"], "generation": 1,
                          "last_error": None}


def test_a_bad_folder_at_start_raises_with_file_line_and_field(folder: Path) -> None:
    write(folder / "alpha.yaml", BROKEN)
    s, _ = store(folder)
    with pytest.raises(ProfileError) as caught:
        s.load()
    assert f"{folder}/alpha.yaml:4: identifier_sistems: unknown key" in str(caught.value)
    assert s.current is EMPTY_PROFILES and s.generation == 0


def test_reload_swaps_a_good_edit_and_keeps_the_last_good_set_on_a_bad_one(
        folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    s, metrics = store(folder)
    s.load()
    write(folder / "alpha.yaml", PROFILE.replace("Europe/Vienna", "Asia/Tokyo"))
    assert s.reload() is True
    good = s.current
    assert s.generation == 2 and good.get("alpha").timezone == "Asia/Tokyo"

    write(folder / "alpha.yaml", BROKEN)
    with caplog.at_level(logging.WARNING, logger="hl7gw.profiles"):
        assert s.reload() is False
    assert s.current is good and s.generation == 2  # the last good set keeps serving
    assert s.last_error is not None
    assert f"{folder}/alpha.yaml:4: identifier_sistems:" in s.last_error
    assert s.status()["last_error"] == s.last_error
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "alpha.yaml:4" in warning.error  # type: ignore[attr-defined]
    assert sample(metrics, "hl7gw_profile_reloads_total", result="rejected") == 1
    assert sample(metrics, "hl7gw_profiles_generation") == 2

    write(folder / "alpha.yaml", PROFILE)
    assert s.reload() is True
    assert s.last_error is None and s.generation == 3
    assert s.current.get("alpha").timezone == "Europe/Vienna"
    assert sample(metrics, "hl7gw_profile_reloads_total", result="ok") == 2


def test_a_bad_yaml_file_and_a_new_file_are_reported_and_picked_up(folder: Path) -> None:
    s, _ = store(folder)
    s.load()
    write(folder / "bravo.yaml", "profile: bravo\nmatch: {application: BRAVO\n")
    assert s.reload() is False
    assert "bravo.yaml:" in (s.last_error or "") and "not valid YAML" in (s.last_error or "")
    write(folder / "bravo.yaml", "profile: bravo\nmatch: {application: BRAVO}\n")
    assert s.reload() is True
    assert s.current.names() == ["alpha", "bravo"]


async def test_watch_reloads_an_edit_and_warns_once_for_a_broken_one(folder: Path) -> None:
    s, metrics = store(folder, interval=0.02)
    s.load()
    watcher = asyncio.create_task(s.watch())
    try:
        write(folder / "alpha.yaml", PROFILE.replace("Europe/Vienna", "Asia/Tokyo"))
        await until(lambda: s.generation == 2)
        assert s.current.get("alpha").timezone == "Asia/Tokyo"

        write(folder / "alpha.yaml", BROKEN)
        await until(lambda: s.last_error is not None)
        await asyncio.sleep(0.2)  # ten more polls of an unchanged broken folder
        assert sample(metrics, "hl7gw_profile_reloads_total", result="rejected") == 1
        assert s.generation == 2 and s.current.get("alpha").timezone == "Asia/Tokyo"
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


def test_snapshot_round_trips_to_an_equal_set_built_once_per_generation(folder: Path) -> None:
    s, _ = store(folder)
    s.load()
    snapshot = s.snapshot()
    assert snapshot == (1, {"alpha.yaml": PROFILE})
    rebuilt = ProfileSet.from_sources(snapshot[1])
    assert rebuilt.names() == s.current.names()
    chosen = rebuilt.select_text(ALPHA.decode())
    assert chosen is not None and chosen.name == "alpha"
    assert rebuilt.select_text(BRAVO.decode()) is None
    # the worker cache: one build per (generation, sources); a new generation rebuilds
    first = profiles_for(snapshot)
    assert profiles_for((1, dict(snapshot[1]))) is first
    write(folder / "alpha.yaml", PROFILE.replace("Europe/Vienna", "Asia/Tokyo"))
    s.reload()
    assert profiles_for(s.snapshot()).get("alpha").timezone == "Asia/Tokyo"
    assert profiles_for((0, {})) is EMPTY_PROFILES


def _patient_and_period(mapped_payload: bytes | None) -> tuple[list[str], str]:
    assert mapped_payload is not None
    bundle = orjson.loads(mapped_payload)
    kinds = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    return ([i["system"] for i in kinds["Patient"]["identifier"]],
            kinds["Encounter"]["period"]["start"])


def test_mapping_the_profile_s_zone_wins_over_the_row_s_and_the_summary_names_it(
        folder: Path) -> None:
    s, _ = store(folder)
    s.load()
    alpha = map_one(ALPHA, "utf-8", "Asia/Tokyo", s.current)
    systems, start = _patient_and_period(alpha.payload)
    assert "https://alpha.example/sid/epix" in systems
    assert start == "2024-01-15T10:25:00+01:00"  # Vienna (the profile), not Tokyo (the row)
    assert orjson.loads(alpha.summary)["profile"] == "alpha"

    bravo = map_one(BRAVO, "utf-8", "Asia/Tokyo", s.current)
    systems, start = _patient_and_period(bravo.payload)
    assert "urn:id:EPIX" in systems and start == "2024-01-15T10:25:00+09:00"  # the row's
    assert orjson.loads(bravo.summary)["profile"] is None

    # blank lines before MSH (some senders' frames start so) change nothing
    padded = map_one(b"\r\n" + ALPHA.replace(b"\r", b"\n"), "utf-8", "Asia/Tokyo", s.current)
    assert orjson.loads(padded.summary)["profile"] == "alpha"

    # the batch entry point (what a worker runs) rebuilds the set from the snapshot
    [again] = map_batch([(ALPHA, "utf-8", "UTC", 1)], s.snapshot())
    assert again.payload == alpha.payload


def test_the_profile_s_charset_wins_over_the_row_s(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    write(d / "alpha.yaml", PROFILE + "charset: latin-1\n")
    profiles = ProfileSet.load(d)
    latin = ALPHA.replace(b"Everyman^Adam", "Müller^Adam".encode("latin-1"))
    mapped = map_one(latin, "utf-8", "UTC", profiles)
    assert mapped.payload is not None
    patient = next(e["resource"] for e in orjson.loads(mapped.payload)["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    assert patient["name"][0]["family"] == "Müller"


async def test_a_worker_process_maps_with_the_live_profiles(folder: Path) -> None:
    s, _ = store(folder)
    s.load()
    pool = MappingPool(workers=1)
    pool.start()
    try:
        [mapped] = await pool.map([(ALPHA, "utf-8", "UTC", s.generation)], s.live())
        assert "https://alpha.example/sid/epix" in _patient_and_period(mapped.payload)[0]
        write(folder / "alpha.yaml", PROFILE.replace("https://alpha.example/sid/epix",
                                                     "https://alpha.example/sid/v2"))
        assert s.reload()
        [mapped] = await pool.map([(ALPHA, "utf-8", "UTC", s.generation)], s.live())
        assert "https://alpha.example/sid/v2" in _patient_and_period(mapped.payload)[0]
    finally:
        pool.stop()


async def test_intake_precedence_profile_then_sender_entry_then_defaults(
        folder: Path, spool: Spool) -> None:
    write(folder / "alpha.yaml", PROFILE + "charset: latin-1\n")
    s, _ = store(folder)
    s.load()
    listener = ListenerSettings(name="t", senders=[
        SenderSettings(application="*", charset="cp1252", default_timezone="Asia/Tokyo")])
    gate = Intake(listener, spool, GatewayMetrics(), default_timezone="America/Chicago",
                  profiles=s)
    assert (await gate.handle(ALPHA, "p")).code == "AA"
    assert (await gate.handle(BRAVO, "p")).code == "AA"
    plain = Intake(ListenerSettings(name="u"), spool, GatewayMetrics(),
                   default_timezone="America/Chicago", profiles=s)
    assert (await plain.handle(BRAVO.replace(b"|BRAVO|", b"|CHARLIE|"), "p")).code == "AA"
    rows = {r.sender.split("|")[0]: r for r in await spool.find(MessageFilter())}
    assert (rows["ALPHA"].charset, rows["ALPHA"].timezone) == ("latin-1", "Europe/Vienna")
    assert (rows["BRAVO"].charset, rows["BRAVO"].timezone) == ("cp1252", "Asia/Tokyo")
    # no profile, no sender entry: MSH-18 (UNICODE UTF-8) and the gateway's zone
    assert (rows["CHARLIE"].charset, rows["CHARLIE"].timezone) == ("utf-8", "America/Chicago")


async def test_intake_checks_with_the_profile_s_specs(tmp_path: Path, spool: Spool) -> None:
    # A profile keying the Patient on PID-2: a message without PID-2 is refused for ALPHA
    # (its spec requires the key) and accepted for BRAVO (keyed on PID-3 as usual).
    d = tmp_path / "p"
    d.mkdir()
    write(d / "alpha.yaml", PROFILE + "patient_key: {field: PID-2}\n")
    s, _ = store(d)
    s.load()
    gate = Intake(ListenerSettings(name="t"), spool, GatewayMetrics(), profiles=s)
    assert (await gate.handle(BRAVO, "p")).code == "AA"
    refused = await gate.handle(ALPHA, "p")
    assert refused.code in ("AE", "AR") and refused.ack is not None
    assert b"PID" in refused.ack


def test_a_kubernetes_configmap_update_is_seen_and_loaded(tmp_path: Path) -> None:
    """A ConfigMap volume holds ``name.yaml -> ..data/name.yaml`` and swaps ``..data``
    (a symlink to a timestamped folder) at once on an update: the watch must see it."""
    from gateway.profiles import fingerprint

    def version(stamp: str, zone: str) -> Path:
        folder = tmp_path / f"..{stamp}"
        folder.mkdir()
        (folder / "lab.yaml").write_text(f"profile: lab\nmatch: {{application: LAB}}\n"
                                         f"timezone: {zone}\n")
        return folder

    version("2026_11_26_01", "Europe/Vienna")
    (tmp_path / "..data").symlink_to("..2026_11_26_01")
    (tmp_path / "lab.yaml").symlink_to("..data/lab.yaml")
    before = fingerprint(tmp_path)
    assert ProfileSet.load(tmp_path).get("lab").timezone == "Europe/Vienna"

    version("2026_11_26_02", "America/Chicago")
    (tmp_path / "..data_tmp").symlink_to("..2026_11_26_02")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")  # what the kubelet does
    assert fingerprint(tmp_path) != before
    assert ProfileSet.load(tmp_path).get("lab").timezone == "America/Chicago"
    assert {name for name, _, _ in fingerprint(tmp_path) or ()} == {"lab.yaml"}
