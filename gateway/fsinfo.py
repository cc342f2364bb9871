"""Which file system a path lives on: mount point, type and device, from the kernel's table.

A benchmark of durable commits measures one disk; its figures mean nothing without saying
which. The mount that holds a path is the one with the longest mount point that is the
path or one of its parents (the last such mount wins when several share a mount point:
the later mount hides the earlier one). ``/proc/self/mountinfo`` is read first (it also
gives the device's major:minor numbers), ``/proc/mounts`` otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
MOUNTS = Path("/proc/mounts")
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class FileSystem:
    """The mount holding a path: ``/`` (ext4 on /dev/vda, 254:0)."""

    mount_point: str
    fs_type: str
    device: str  # the mount's source: /dev/vda, tmpfs, server:/export
    dev: str = ""  # major:minor, when /proc/self/mountinfo gave it

    def describe(self) -> str:
        """One line for a report: ``/ (ext4 on /dev/vda)``."""
        return f"{self.mount_point} ({self.fs_type} on {self.device})"


UNKNOWN = FileSystem("?", "unknown", "unknown")


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in paths as ``\\040`` and so on."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[FileSystem]:
    """Every mount in ``/proc/self/mountinfo`` text, in mount order.

    A line is ``id parent major:minor root mount-point options [optional...] - type source
    super-options``; the optional fields vary in number, hence the ``-`` separator.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        if len(fields) < sep + 3:
            continue
        mounts.append(FileSystem(_unescape(fields[4]), fields[sep + 1],
                                 _unescape(fields[sep + 2]), fields[2]))
    return mounts


def parse_mounts(text: str) -> list[FileSystem]:
    """Every mount in ``/proc/mounts`` text (``source mount-point type options 0 0``)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append(FileSystem(_unescape(fields[1]), fields[2], _unescape(fields[0])))
    return mounts


def mount_of(path: str, mounts: list[FileSystem]) -> FileSystem:
    """The mount holding the absolute, resolved ``path``: longest matching mount point."""
    best: FileSystem | None = None
    for mount in mounts:
        point = mount.mount_point
        inside = path == point or point == "/" or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.mount_point)):
            best = mount
    return best or UNKNOWN


def file_system_of(path: Path) -> FileSystem:
    """The file system ``path`` (which must exist) is on; ``UNKNOWN`` without ``/proc``."""
    resolved = os.path.realpath(path)
    for table, parse in ((MOUNTINFO, parse_mountinfo), (MOUNTS, parse_mounts)):
        try:
            text = table.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            continue
        mounts = parse(text)
        if mounts:
            return mount_of(resolved, mounts)
    return UNKNOWN
