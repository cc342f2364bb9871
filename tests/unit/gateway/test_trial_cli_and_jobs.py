"""``hl7gw profiles try``'s refusals (exit 2, a message saying what to fix), and applying a
tried profile to a real profiles folder and ``ProfileStore`` (atomic, reloaded, or rolled
back when the folder changed under it)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.config import ProfilesSettings
from gateway.errors import SpoolError
from gateway.profiles import ProfileStore
from gateway.spool import Accepted, MessageFilter, MessageInfo, Spool, StoredBody
from gateway.trial import ReadOnlySpool, TrialError, Window, make_candidate
from gateway.trial.jobs import TrialJob, TrialJobs, write_atomically
from tests.support import PROFILES

SUNLAB_YAML = (PROFILES / "sunlab.yaml").read_text()
FLIPPED = SUNLAB_YAML.replace("    LOWISH: L\n", "    LOWISH: L\n    H: L\n")


def config(tmp_path: Path, profiles: Path, spool: Path | None = None) -> Path:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"spool:\n  path: {spool or tmp_path / 'spool.db'}\n"
                   f"profiles:\n  dir: {profiles}\n"
                   "kafka:\n  bootstrap_servers: 127.0.0.1:1\n  topic: t\n")
    return cfg


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["profiles", "try", *args])
    return result.exit_code, result.stdout, result.stderr


def test_refusals_exit_2_with_what_to_fix(tmp_path: Path) -> None:
    good = tmp_path / "next.yaml"
    good.write_text(FLIPPED)
    code, _, err = run(str(good), "--config", str(config(tmp_path, PROFILES)))
    assert code == 2 and "no spool at" in err and "spool.path" in err
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("spool:\n  pathh: x\n")
    code, _, err = run(str(good), "--config", str(bad_config))
    assert code == 2 and f"{bad_config}:2" in err
    broken_live = tmp_path / "live"
    broken_live.mkdir()
    (broken_live / "x.yaml").write_text("profile: x\nmatch: {application: A}\ncodes: {'9': {}}\n")
    code, _, err = run(str(good), "--config", str(config(tmp_path, broken_live)))
    assert code == 2 and "live profiles" in err and "x.yaml:3" in err
    code, _, err = run(str(good), "--config", str(config(tmp_path, PROFILES)),
                       "--since", "yesterday")
    assert code == 2 and "duration back from now" in err
    code, _, err = run(str(good), "--config", str(config(tmp_path, PROFILES)), "--last", "0")
    assert code == 2 and "--last" in err


def store_on(folder: Path) -> ProfileStore:
    shutil.copytree(PROFILES, folder)
    store = ProfileStore(ProfilesSettings(dir=folder, watch_interval_s=0))
    store.load()
    return store


class Empty:
    """A spool with no messages."""

    async def find(self, where: MessageFilter, *, limit: int = 100,
                   before_id: int | None = None) -> list[MessageInfo]:
        return []

    async def body(self, row_id: int) -> StoredBody | None:
        return None


async def finished_job(jobs: TrialJobs, store: ProfileStore, text: str) -> TrialJob:
    candidate = make_candidate(text, store.current, origin=str(store.settings.dir),
                               generation=store.generation)
    job = jobs.create(candidate, Window(), user="olga", label="pasted.yaml")
    jobs.launch(job, Empty())
    assert job.task is not None
    await job.task
    return job


def test_apply_writes_atomically_and_reloads(tmp_path: Path) -> None:
    store = store_on(tmp_path / "profiles")
    jobs = TrialJobs()
    job = asyncio.run(finished_job(jobs, store, FLIPPED))
    assert job.state == "done" and job.report is not None and job.report.tried == 0
    generation = store.generation
    assert jobs.apply(job, store) == generation + 1
    assert (tmp_path / "profiles" / "sunlab.yaml").read_text() == FLIPPED
    assert store.current.sources["sunlab.yaml"] == FLIPPED and job.state == "applied"
    assert sorted(p.name for p in (tmp_path / "profiles").iterdir()) == [
        "sunlab.yaml", "wardvitals.yaml"]  # no temporary file left behind
    with pytest.raises(TrialError, match="is applied"):
        jobs.apply(job, store)


def test_apply_refuses_when_the_live_set_moved_on(tmp_path: Path) -> None:
    store = store_on(tmp_path / "profiles")
    jobs = TrialJobs()
    job = asyncio.run(finished_job(jobs, store, FLIPPED))
    assert store.reload()  # someone else reloaded since the trial
    with pytest.raises(TrialError, match="changed since this trial ran"):
        jobs.apply(job, store)
    assert (tmp_path / "profiles" / "sunlab.yaml").read_text() == SUNLAB_YAML


def test_a_refused_reload_puts_the_old_file_back(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    store = store_on(folder)
    jobs = TrialJobs()
    job = asyncio.run(finished_job(jobs, store, FLIPPED))
    # a file written into the folder behind the store's back, clashing with sunlab
    (folder / "zz.yaml").write_text("profile: zz\nmatch: {application: SUNLAB, facility: "
                                    "RIVERSIDE}\n")
    with pytest.raises(TrialError, match="old file is back"):
        jobs.apply(job, store)
    assert (folder / "sunlab.yaml").read_text() == SUNLAB_YAML
    assert store.current.sources["sunlab.yaml"] == SUNLAB_YAML


def test_jobs_are_bounded(tmp_path: Path) -> None:
    store = store_on(tmp_path / "profiles")
    jobs = TrialJobs(keep=3, running=1)
    candidate = make_candidate(FLIPPED, store.current)
    first = jobs.create(candidate, Window(), user="u", label="l")
    with pytest.raises(TrialError, match="running already"):
        jobs.create(candidate, Window(), user="u", label="l")
    jobs.discard(first)
    for _ in range(5):
        jobs.discard(jobs.create(candidate, Window(), user="u", label="l"))
    assert len(jobs.recent()) <= 4 and jobs.get(first.id) is None


def test_write_atomically_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "a.yaml"
    target.write_text("old")
    write_atomically(target, "new text")
    assert target.read_text() == "new text" and [p.name for p in tmp_path.iterdir()] == [
        "a.yaml"]


def test_read_only_spool_reads_and_leaves_no_file_behind(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"

    async def fill() -> None:
        spool = Spool(path)
        await spool.start()
        for sender, cid in (("EPIC|HOSP", "A"), ("SUNLAB^X|RIVERSIDE^1.2", "B"),
                            ("EPIC|HOSP", "C")):
            await spool.store(Accepted("l", "p", sender, cid, "ADT^A01", cid,
                                       b"MSH|" + cid.encode(), b"MSA|AA", f"ev-{cid}"))
        await spool.stop()

    asyncio.run(fill())
    before = sorted(p.name for p in tmp_path.iterdir())
    assert before == ["spool.db"]  # stopped cleanly: no WAL left, so opened immutable

    async def read() -> tuple[list[str], list[str], bytes | None]:
        source = ReadOnlySpool(path)
        try:
            senders = await source.senders()
            rows = await source.find(MessageFilter(sender="EPIC|HOSP"), limit=10)
            body = await source.body(rows[0].id)
            return senders, [r.control_id for r in rows], body.raw if body else None
        finally:
            source.close()

    senders, ids, raw = asyncio.run(read())
    assert senders == ["EPIC|HOSP", "SUNLAB^X|RIVERSIDE^1.2"]
    assert ids == ["C", "A"] and raw == b"MSH|C"
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(SpoolError, match="no spool at"):
        ReadOnlySpool(tmp_path / "missing.db")
