"""Worker processes that die with the gateway and never outlast its drain deadline.

A ``ProcessPoolExecutor`` worker blocks on its call queue, whose pipe it holds both ends
of, so it never sees its parent go: after a SIGKILL of the gateway it lived on, orphaned,
and with it multiprocessing's resource tracker (which exits only once every process
holding its pipe is gone). Two guards, armed in the worker's initializer:

- Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel kills the worker the moment
  the thread that spawned it ends (the event loop's thread, which outlives the pool);
- everywhere: a daemon thread that notices the parent pid change (re-parented) and exits.

The resource tracker is kept: with the spawn start method it unlinks the pool's named
semaphores if the gateway dies without doing so, and it exits by itself once the gateway
and its workers are gone.

``ProcessPoolExecutor.shutdown(wait=True)`` waits for the batch in progress, however long
(4 minutes for a 12,000-line report). :func:`stop_pool` waits only until a deadline, then
terminates the workers; the rows of an abandoned batch are still pending in the spool.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger("hl7gw.mapping")

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_POLL_S = 1.0
KILL_GRACE_S = 1.0  # after SIGTERM, before SIGKILL: a worker ends at once on SIGTERM


def die_with_parent(parent: int) -> None:
    """In a worker: end this process when ``parent`` (the pid that spawned it) ends.

    SIGINT is ignored: a terminal's Ctrl-C reaches the worker with the gateway, and the
    gateway stops its workers itself (``stop_pool``), with no traceback from a worker.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed", extra={"errno": ctypes.get_errno()})
    if os.getppid() != parent:  # the parent died before the guard was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch",
                     daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def stop_pool(pool: ProcessPoolExecutor, within: float | None) -> bool:
    """Shut ``pool`` down, terminating workers still busy after ``within`` seconds.

    Returns True when every worker finished on its own. ``None`` waits without limit.
    """
    # The executor keeps no public handle on its processes; they are needed to end them.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    stopper = threading.Thread(target=pool.shutdown, kwargs={"wait": True,
                                                             "cancel_futures": True},
                               name="mapping-pool-stop", daemon=True)
    stopper.start()
    stopper.join(within)
    if not stopper.is_alive():
        return True
    log.warning("mapping worker still busy at the drain deadline; stopping it (the rows of "
                "its batch stay pending and are mapped after the restart)",
                extra={"workers": len(processes), "within_s": within})
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + KILL_GRACE_S
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.0))
        if process.is_alive():
            process.kill()
            process.join(KILL_GRACE_S)
    stopper.join(KILL_GRACE_S)
    return False
