"""Mapping spooled messages to FHIR, off the ACK path and, by default, off the event loop.

The publisher hands batches of raw messages to a small process pool (``mapping_workers``,
default 1): on a 2-core machine the event loop keeps one core for MLLP and the spool while
the other maps. Batches, not single messages, cross the process boundary, so the pickling
cost is paid once per batch. ``mapping_workers: 0`` maps inline (tests, tiny sites).

Profiles: each batch carries the live profile set as a snapshot, (generation, file name ->
YAML text). A worker process builds the ``ProfileSet`` from it once and keeps only the
latest one, so a reload costs one rebuild per worker and a batch costs a comparison. Each
message is matched to its profile by MSH (``gateway.prepare``, as intake did) at mapping time,
and the profile's ``charset`` and ``timezone`` win over the ones stored with the row: a
replay after a profile fix maps with the fix.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import orjson

import mappers
from gateway.prepare import convert, describe, prepare
from gateway.worker_lifetime import die_with_parent, stop_pool
from hl7gw.shutdown import children_ignore_interrupts
from mappers.errors import MessageError, ProfileError
from mappers.profiles import EMPTY_PROFILES, Profile, ProfileSet


@dataclass(frozen=True)
class Mapped:
    """One message's mapping: the Bundle as JSON bytes, or why there is none."""

    payload: bytes | None
    patient_key: str | None
    summary: str  # JSON: issues, unmapped fields, profile (names and codes, never values)
    error: str | None = None
    resource_types: tuple[str, ...] = ()  # what the Bundle holds, for topic routing


# raw bytes, charset and time zone stored with the row, and the generation of the profile
# set the publisher took the batch under: the one the batch's snapshot carries, so a batch
# is never mapped half with one set and half with the next.
MapRequest = tuple[bytes, str, str, int]
ProfileSnapshot = tuple[int, Mapping[str, str]]  # generation, file name -> YAML text
NO_PROFILES: ProfileSnapshot = (0, {})

# The worker's profile set: (generation, sources it was built from, the set); the latest only.
_built: tuple[int, Mapping[str, str], ProfileSet] = (0, {}, EMPTY_PROFILES)


def profiles_for(snapshot: ProfileSnapshot) -> ProfileSet:
    """The ``ProfileSet`` of a snapshot, built once per generation and process.

    The sources are compared too, not just the generation: two gateways in one process
    (tests with inline mapping) count generations independently.
    """
    global _built
    generation, sources = snapshot
    if not sources:
        return EMPTY_PROFILES
    if _built[0] != generation or _built[1] != sources:
        _built = (generation, dict(sources), ProfileSet.from_sources(sources))
    return _built[2]


def _summary(result: mappers.ConversionResult | None, profile: Profile | None) -> str:
    name = profile.name if profile is not None else None
    if result is None:
        return orjson.dumps({"profile": name}).decode()
    return orjson.dumps({"issues": [asdict(i) for i in result.issues],
                         "unmapped": result.unmapped, "profile": name}).decode()


def map_one(raw: bytes, charset: str, timezone: str,
            profiles: ProfileSet = EMPTY_PROFILES) -> Mapped:
    """Map one message; never raises (a failure is returned as ``error``).

    ``gateway.prepare`` as for every caller: the profile is chosen from MSH-3.1, MSH-4.1
    and MSH-12.1 (most specific wins); the row's ``charset`` and ``timezone`` stand at the
    sender level (intake decided them), so a profile's charset and zone win over them.
    """
    profile = None
    try:
        prepared = prepare(raw, profiles=profiles, charset=charset, timezone=timezone,
                           errors="replace")
        profile = prepared.profile
        result = convert(prepared)
    except MessageError as exc:
        return Mapped(None, None, _summary(None, profile), describe(exc))
    except Exception as exc:  # noqa: BLE001 - a mapping bug is kept on the row, not raised
        return Mapped(None, None, _summary(None, profile),
                      f"internal mapping error ({type(exc).__name__})")
    kinds = tuple(sorted({e["resource"]["resourceType"] for e in result.bundle["entry"]}))
    return Mapped(orjson.dumps(result.bundle), result.patient_key, _summary(result, profile),
                  resource_types=kinds)


def map_batch(requests: list[MapRequest], snapshot: ProfileSnapshot = NO_PROFILES
              ) -> list[Mapped]:
    """Map a batch (the unit of work sent to a worker process) with the snapshot's profiles."""
    try:
        profiles = profiles_for(snapshot)
    except ProfileError as exc:
        # Cannot happen for a snapshot the gateway loaded itself; if it does, say so on
        # every row instead of guessing a mapping without the sender's profile.
        reason = f"ProfileError: the live profiles did not build in the worker: {exc}"
        return [Mapped(None, None, _summary(None, None), reason[:500]) for _ in requests]
    return [map_one(raw, charset, tz, profiles) for raw, charset, tz, _ in requests]


def _worker_ready(parent: int) -> None:
    """Die with the gateway; load the specs before the first batch, then freeze them."""
    die_with_parent(parent)
    mappers.supported_message_types()
    gc.freeze()


BatchMapper = Callable[[list[MapRequest], ProfileSnapshot], list[Mapped]]


class MappingPool:
    """Maps batches in worker processes, or inline with ``workers=0``.

    The workers die with the gateway and never hold up its stop past a deadline (see
    ``gateway.worker_lifetime``). ``batch_fn`` is what a worker runs per batch; tests pass
    a slow one (it must be importable by name, as the workers are spawned).
    """

    def __init__(self, workers: int = 1, *, batch_fn: BatchMapper = map_batch) -> None:
        self.workers = workers
        self.batch_fn = batch_fn
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker processes (spawned: no fork of a threaded process)."""
        if self.workers > 0 and self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_ready,
                                             initargs=(os.getpid(),))
            # Spawn the workers now, from this (the event loop's) thread, which their
            # parent-death signal is tied to, and load the specs before the first message.
            # A terminal's Ctrl-C reaches them too; the gateway stops them itself.
            with children_ignore_interrupts():
                for _ in range(self.workers):
                    self._pool.submit(int)

    def stop(self, within: float | None = None) -> bool:
        """Stop the workers, ending any still busy after ``within`` seconds; safe twice.

        Returns False when a batch was abandoned (its rows stay pending in the spool).
        """
        pool, self._pool = self._pool, None
        return True if pool is None else stop_pool(pool, within)

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (empty when mapping inline), for CPU accounting."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return sorted(processes)

    async def map(self, requests: list[MapRequest],
                  live: tuple[int, ProfileSet] = (0, EMPTY_PROFILES)) -> list[Mapped]:
        """Map ``requests`` in order with the profile set ``live`` = (generation, set).

        Inline, the live set itself is used; a worker gets its sources and rebuilds it
        once per generation.
        """
        generation, profiles = live
        if self._pool is None:
            return [map_one(raw, charset, tz, profiles) for raw, charset, tz, _ in requests]
        snapshot: ProfileSnapshot = (generation, dict(profiles.sources))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.batch_fn, requests, snapshot)
