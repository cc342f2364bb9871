"""Mapping spooled messages to FHIR, off the ACK path and, by default, off the event loop.

The publisher hands batches of raw messages to a small process pool (``mapping_workers``,
default 1): on a 2-core machine the event loop keeps one core for MLLP and the spool while
the other maps. Batches, not single messages, cross the process boundary, so the pickling
cost is paid once per batch. ``mapping_workers: 0`` maps inline (tests, tiny sites).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import orjson

import mappers
from mappers.errors import MessageError


@dataclass(frozen=True)
class Mapped:
    """One message's mapping: the Bundle as JSON bytes, or why there is none."""

    payload: bytes | None
    patient_key: str | None
    summary: str  # JSON: issues and unmapped fields (names and codes, never values)
    error: str | None = None
    resource_types: tuple[str, ...] = ()  # what the Bundle holds, for topic routing


MapRequest = tuple[bytes, str, str]  # raw bytes, charset, default time zone


def map_one(raw: bytes, charset: str, timezone: str) -> Mapped:
    """Map one message; never raises (a failure is returned as ``error``)."""
    try:
        result = mappers.convert(raw.decode(charset, "replace"), default_tz=timezone)
    except MessageError as exc:
        where = f" at {exc.location}" if exc.location else ""
        return Mapped(None, None, "{}", f"{type(exc).__name__}{where}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a mapping bug is kept on the row, not raised
        return Mapped(None, None, "{}", f"internal mapping error ({type(exc).__name__})")
    summary = orjson.dumps({"issues": [asdict(i) for i in result.issues],
                            "unmapped": result.unmapped}).decode()
    kinds = tuple(sorted({e["resource"]["resourceType"] for e in result.bundle["entry"]}))
    return Mapped(orjson.dumps(result.bundle), result.patient_key, summary,
                  resource_types=kinds)


def map_batch(requests: list[MapRequest]) -> list[Mapped]:
    """Map a batch (the unit of work sent to a worker process)."""
    return [map_one(*req) for req in requests]


def _worker_ready() -> None:
    """Load the specs before the first batch, then freeze them out of the GC's sight."""
    mappers.supported_message_types()
    gc.freeze()


class MappingPool:
    """Maps batches in worker processes, or inline with ``workers=0``."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker processes (spawned: no fork of a threaded process)."""
        if self.workers > 0 and self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_ready)

    def stop(self) -> None:
        """Stop the workers; safe to call twice."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def map(self, requests: list[MapRequest]) -> list[Mapped]:
        """Map ``requests`` in order."""
        if self._pool is None:
            return map_batch(requests)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, map_batch, requests)
