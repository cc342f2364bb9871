"""CPU time of other processes on this machine, for the benchmarks' per-message figures.

On a shared 2-core machine a run's msg/s drifts with whatever else runs, but the CPU time
each process spends per message does not; and the processes a benchmark starts (senders,
mapping workers, a local Kafka broker) share the cores with the gateway it measures. Both
helpers read Linux's ``/proc`` and answer None elsewhere, or when the process is gone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"  # st column of /proc/net/tcp{,6} for a listening socket


def cpu_seconds(pids: Sequence[int], proc: Path = PROC) -> float | None:
    """User + system CPU seconds used so far by the processes ``pids``, or None."""
    total = 0.0
    try:
        for pid in pids:
            # The command name (field 2) may hold spaces and parentheses: split after it.
            fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return total


def listening_pid(port: int, proc: Path = PROC) -> int | None:
    """The process listening on TCP ``port`` on this machine (a local Kafka broker), or
    None: not found, not Linux, or its file descriptors are not ours to read."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == _LISTEN and \
                    int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
        except OSError:  # gone, or another user's
            continue
    return None


def usable_cores() -> int:
    """The cores this process may run on (its affinity; the machine's count elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_bound(cores: int, server_us: float, others_us: float) -> float:
    """The most msg/s a server could reach if CPU were all that bound it: each message
    costs it ``server_us`` and the other processes on the machine ``others_us`` of CPU
    time, ``cores`` cores share them, and the server's event loop is one thread, so its
    own cost bounds it on one core too (its figure includes its other threads: a generous
    bound). 0 when the server's cost was not measured."""
    if server_us <= 0:
        return 0.0
    return min(max(cores, 1) * 1e6 / (server_us + others_us), 1e6 / server_us)
