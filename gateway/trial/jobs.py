"""Trials running in the background of a gateway, and applying one that looked right.

The console starts a trial as an asyncio task (the mapping itself runs in a thread, see
``engine``) and polls it. Jobs live in memory only: a restart forgets them, which costs a
re-run, never a profile change. Applying writes the profile into the profiles folder
atomically (a temporary file in the same folder, fsync, rename: the folder watcher sees
the old file or the new one, never half of one) and reloads the live set at once; if the
reload refuses the new set (the folder changed since the trial), the old file is put back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.profiles import ProfileStore
from gateway.trial.candidate import Candidate, TrialError, check_file_name
from gateway.trial.engine import DEFAULT_EXAMPLES, TrialReport, Window, run_trial
from gateway.trial.source import MessageSource

KEEP = 20  # finished jobs kept for looking at; older ones are dropped
RUNNING = 2  # trials at once: each keeps a core busy mapping


@dataclass
class TrialJob:
    """One trial: what was tried, how far it is, and its report."""

    id: str
    user: str
    label: str  # where the profile came from: "pasted", "upload NAME", "draft NAME"
    candidate: Candidate
    window: Window
    examples: int = DEFAULT_EXAMPLES
    state: str = "running"  # running, done, failed, applied, discarded
    phase: str = "choosing"
    done: int = 0
    total: int = 0
    report: TrialReport | None = None
    error: str | None = None
    started_at: float = 0.0
    finished_at: float | None = None
    generation: int | None = None  # the live set's generation after applying
    task: asyncio.Task[None] | None = None

    def progress(self, phase: str, done: int, total: int) -> None:
        """The engine's progress callback."""
        self.phase, self.done, self.total = phase, done, total

    def as_json(self) -> dict[str, Any]:
        """The job for the API (the report holds message values: operators only)."""
        return {"job": self.id, "state": self.state, "user": self.user, "source": self.label,
                "profile": self.candidate.name, "target": self.candidate.target,
                "replaces": self.candidate.replaces.path if self.candidate.replaces else None,
                "phase": self.phase, "done": self.done, "total": self.total,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "error": self.error, "generation": self.generation,
                "report": self.report.as_json() if self.report is not None else None}


class TrialJobs:
    """The trials of one console, newest first; bounded in number and concurrency."""

    def __init__(self, keep: int = KEEP, running: int = RUNNING) -> None:
        self.keep = keep
        self.running = running
        self._jobs: dict[str, TrialJob] = {}
        self._apply_lock = threading.Lock()

    def create(self, candidate: Candidate, window: Window, *, user: str, label: str,
               examples: int = DEFAULT_EXAMPLES) -> TrialJob:
        """A new job, not started yet (``launch`` starts it); TrialError when too busy."""
        busy = sum(j.state == "running" for j in self._jobs.values())
        if busy >= self.running:
            raise TrialError(f"{busy} trials are running already; wait for one to finish")
        job = TrialJob(secrets.token_urlsafe(9), user, label, candidate, window, examples,
                       started_at=time.time())
        self._jobs[job.id] = job
        finished = [j for j in self._jobs.values() if j.state != "running"]
        for old in finished[:max(0, len(self._jobs) - self.keep)]:
            del self._jobs[old.id]
        return job

    def launch(self, job: TrialJob, source: MessageSource,
               on_done: Callable[[TrialJob], Awaitable[None]] | None = None,
               close: Callable[[], None] | None = None) -> None:
        """Run ``job`` in the background; ``on_done`` (audit) runs after it ends, ``close``
        (the source's) when it ends in any way, cancelled too."""
        async def run() -> None:
            try:
                job.report = await run_trial(job.candidate, source, job.window,
                                             examples=job.examples, progress=job.progress)
                job.state = "done"
            except Exception as exc:  # noqa: BLE001 - shown on the job, not raised
                job.state, job.error = "failed", str(exc) or type(exc).__name__
            finally:
                if close is not None:
                    close()
            job.finished_at = time.time()
            if on_done is not None:
                await on_done(job)

        job.task = asyncio.create_task(run(), name=f"trial-{job.id}")

    def get(self, job_id: str) -> TrialJob | None:
        """The job, or None (unknown, or dropped as old)."""
        return self._jobs.get(job_id)

    def recent(self) -> list[TrialJob]:
        """Every kept job, newest first."""
        return sorted(self._jobs.values(), key=lambda j: -j.started_at)

    def discard(self, job: TrialJob) -> None:
        """Drop a job's profile: stop it if running; nothing was ever written."""
        if job.task is not None and not job.task.done():
            job.task.cancel()
        job.state = "discarded"

    async def stop(self) -> None:
        """Cancel running trials (at shutdown)."""
        tasks = [j.task for j in self._jobs.values() if j.task and not j.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def apply(self, job: TrialJob, store: ProfileStore) -> int:
        """Write the job's profile into the profiles folder and reload; the new generation.

        Blocking (file writes, compiling the set): call it in a thread. TrialError when the
        job is not a finished trial, the live set changed since it ran, or the reload
        refused the new set (then the old file is back and the old set stays live).
        """
        directory = store.settings.dir
        if directory is None:
            raise TrialError("this gateway has no profiles.dir: set one in its config to "
                             "apply profiles from the console")
        with self._apply_lock:
            if job.state != "done":
                raise TrialError(f"trial {job.id} is {job.state}; only a finished trial "
                                 "can be applied")
            if store.generation != job.candidate.generation:
                raise TrialError(f"the live profiles changed since this trial ran (generation"
                                 f" {job.candidate.generation}, now {store.generation}); "
                                 "run the trial again")
            path = directory / check_file_name(job.candidate.target)
            previous = path.read_text(encoding="utf-8") if path.exists() else None
            write_atomically(path, job.candidate.text)
            if not store.reload():
                error = store.last_error
                if previous is None:
                    path.unlink(missing_ok=True)
                else:
                    write_atomically(path, previous)
                store.reload()
                raise TrialError(f"the gateway refused the new set, so the old file is back:"
                                 f" {error}")
            job.state, job.generation = "applied", store.generation
            return store.generation


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: temp file beside it, fsync, rename, fsync folder.

    The temporary name does not end in ``.yaml``, so the folder watcher never loads it.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
