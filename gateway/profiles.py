"""The live set of per-sender mapping profiles, and how it changes while the gateway runs.

A ``ProfileStore`` holds one immutable ``ProfileSet`` (``mappers.profiles``) at a time.
Intake and the publisher read ``current`` for every message; a reload builds a whole new
set and swaps it in with one assignment, so a message is mapped with the old set or the
new one, never half of each, and no MLLP connection notices a reload.

Reloads come from SIGHUP (``GatewayService``) or from ``watch()``, which polls the folder
for a change in its ``*.yaml`` files (names, sizes, modification times). A bad edit is
refused whole: the last good set keeps serving, ``last_error`` says
``file:line: field: what is wrong`` (shown on ``/readyz``), a warning is logged and
``hl7gw_profile_reloads_total{result="rejected"}`` counts it. A bad folder at start-up is
different: ``load()`` raises and the gateway does not start, because there is no good set
to fall back on.

``generation`` grows by one with every successful load; the mapping workers cache the set
they built per generation (see ``snapshot()`` and ``gateway.mapping``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from gateway.config import ProfilesSettings
from gateway.metrics import GatewayMetrics
from mappers.errors import ProfileError
from mappers.profiles import EMPTY_PROFILES, ProfileSet

log = logging.getLogger("hl7gw.profiles")

# (file name, mtime_ns, size) of every *.yaml file; None: the folder cannot be listed.
Fingerprint = frozenset[tuple[str, int, int]] | None


def fingerprint(directory: Path) -> Fingerprint:
    """What ``watch()`` compares between polls: cheap (one stat per file), no reading."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    out: set[tuple[str, int, int]] = set()
    for entry in entries:
        if entry.name.endswith(".yaml"):
            try:
                st = entry.stat()
            except OSError:  # deleted between the listing and the stat: the next poll sees it
                continue
            out.add((entry.name, st.st_mtime_ns, st.st_size))
    return frozenset(out)


class ProfileStore:
    """The live ``ProfileSet`` of a running gateway; see the module docstring."""

    def __init__(self, settings: ProfilesSettings, metrics: GatewayMetrics | None = None
                 ) -> None:
        self.settings = settings
        self.metrics = metrics
        # One tuple, swapped in one assignment: readers never see a set with another
        # set's generation.
        self._live: tuple[int, ProfileSet] = (0, EMPTY_PROFILES)
        self.last_error: str | None = None
        self.loaded_at: float | None = None
        self._seen: Fingerprint = None
        self._lock = threading.Lock()  # SIGHUP and the watcher may reload at once

    @property
    def current(self) -> ProfileSet:
        """The set every new mapping uses (``EMPTY_PROFILES`` without ``profiles.dir``)."""
        return self._live[1]

    @property
    def generation(self) -> int:
        """Successful loads so far (0: nothing loaded, no profiles configured)."""
        return self._live[0]

    def live(self) -> tuple[int, ProfileSet]:
        """(generation, set), read together."""
        return self._live

    def snapshot(self) -> tuple[int, dict[str, str]]:
        """(generation, file name -> YAML text): what a mapping worker rebuilds the set from."""
        generation, profiles = self._live
        return generation, dict(profiles.sources)

    def load(self) -> None:
        """Load at start-up; raises ``ProfileError`` (file:line: field) so the start fails."""
        directory = self.settings.dir
        if directory is None:
            self._publish_gauges()
            return
        with self._lock:
            self._seen = fingerprint(directory)
            self._install(ProfileSet.load(directory))
        log.info("profiles loaded", extra={"profiles": self.current.names(),
                                           "generation": self.generation})

    def reload(self) -> bool:
        """Load the folder again; on a mistake keep the last good set and return False.

        True when the new set is live (or there is no folder to load: nothing to do).
        """
        directory = self.settings.dir
        if directory is None:
            log.info("profiles reload asked for, but no profiles.dir is configured")
            return True
        with self._lock:
            self._seen = fingerprint(directory)
            try:
                loaded = ProfileSet.load(directory)
            except ProfileError as exc:
                # The error names file, line and field of the profile file: never message data.
                self.last_error = str(exc)
                if self.metrics is not None:
                    self.metrics.profile_reloads.labels("rejected").inc()
                log.warning("profiles reload rejected; the last good profiles stay live",
                            extra={"error": self.last_error, "generation": self.generation})
                return False
            self._install(loaded)
        if self.metrics is not None:
            self.metrics.profile_reloads.labels("ok").inc()
        log.info("profiles reloaded", extra={"profiles": self.current.names(),
                                             "generation": self.generation})
        return True

    def _install(self, profiles: ProfileSet) -> None:
        self._live = (self._live[0] + 1, profiles)
        self.last_error = None
        self.loaded_at = time.time()
        self._publish_gauges()

    def _publish_gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.profiles_loaded.set(len(self.current.profiles))
            self.metrics.profiles_generation.set(self.generation)

    def changed(self) -> bool:
        """True when the folder's files differ from what the last (attempted) load saw."""
        directory = self.settings.dir
        return directory is not None and fingerprint(directory) != self._seen

    async def watch(self) -> None:
        """Poll every ``watch_interval_s`` and reload on a change; runs until cancelled.

        The load runs in a thread: compiling a profile's specs takes tens of milliseconds
        that MLLP connections should not wait for. A rejected edit is not retried until
        the files change again, so a broken file gives one warning, not one per poll.
        """
        interval = self.settings.watch_interval_s
        if self.settings.dir is None or interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                await asyncio.to_thread(self.reload)

    def status(self) -> dict[str, Any]:
        """What ``/readyz`` shows: folder, loaded names, generation and the last error."""
        directory = self.settings.dir
        return {"dir": str(directory) if directory is not None else None,
                "loaded": self.current.names(), "generation": self.generation,
                "last_error": self.last_error}
