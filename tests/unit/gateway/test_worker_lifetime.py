"""Mapping workers: stopped at a deadline, never outliving the gateway."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from gateway.mapping import MappingPool
from gateway.worker_lifetime import die_with_parent, stop_pool

ROOT = Path(__file__).resolve().parents[3]


def spawn_pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=die_with_parent, initargs=(os.getpid(),))


def test_stop_pool_ends_a_busy_worker_at_the_deadline() -> None:
    # Issue 16.6: shutdown(wait=True) waited for the batch in progress (4 minutes).
    pool = spawn_pool()
    busy = pool.submit(time.sleep, 300)
    processes = list(pool._processes.values())
    time.sleep(0.5)
    began = time.monotonic()
    assert stop_pool(pool, 1.0) is False
    assert time.monotonic() - began < 1.0 + 8.0
    assert all(not p.is_alive() for p in processes)
    assert busy.done()


def test_stop_pool_returns_at_once_when_idle() -> None:
    pool = spawn_pool()
    assert pool.submit(int).result(timeout=60) == 0
    began = time.monotonic()
    assert stop_pool(pool, 30.0) is True
    assert time.monotonic() - began < 10


def test_mapping_pool_stop_is_bounded_and_idempotent() -> None:
    pool = MappingPool(1)
    pool.start()
    assert pool.stop(10.0) is True
    assert pool.stop(10.0) is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_dies_with_its_parent() -> None:
    # Issue 16.7: after a SIGKILL of the gateway its mapping worker lived on, orphaned.
    script = textwrap.dedent("""
        import os, sys, time
        from gateway.mapping import MappingPool
        pool = MappingPool(1)
        pool.start()
        pool._pool.submit(int).result(timeout=60)
        print(" ".join(str(p.pid) for p in pool._pool._processes.values()), flush=True)
        time.sleep(600)
    """)
    # stderr dropped: the resource tracker reports the semaphores it cleaned up after us.
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, cwd=ROOT, text=True)
    try:
        assert parent.stdout is not None
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert workers and all(alive(p) for p in workers)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in workers if alive(p)]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
