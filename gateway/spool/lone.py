"""When a commit need not wait for company: the spool's lone-sender path.

The group-commit writer (gateway/spool/store.py) is a task: a frame's row goes through a
queue, the writer wakes on the next loop turn, lets the loop turn again so that frames
from other connections can join, commits, and wakes the frame's task on a third turn.
With many senders those turns buy shared fsyncs. With one connection sending, nobody
can join (its frames wait for each other's ACKs), and the turns only cost time: each is
an epoll call and a round of callbacks, next to a disk flush of a few hundred
microseconds. :class:`LoneSender` says when a row may be committed at once instead.
"""

from __future__ import annotations

import asyncio

LONE_AFTER = 8  # rows in a row from one connection before its commits skip the writer
# Commits at once without the loop turning in between (a caller storing a batch file's
# messages one after the other); past this the writer task's path yields to other tasks.
MAX_STREAK = 4


class LoneSender:
    """Tracks who stores: :meth:`admits` is true while one connection is the only one."""

    def __init__(self) -> None:
        self._last_peer = ""
        self._same_peer = 0
        self._streak = 0  # rows admitted since the loop last turned

    def admits(self, peer: str) -> bool:
        """Whether ``peer``'s row may be committed at once: the last ``LONE_AFTER`` rows
        came from it too, and the loop turned within the last ``MAX_STREAK`` of them."""
        if peer != self._last_peer:
            self._last_peer, self._same_peer = peer, 0
            return False
        self._same_peer += 1
        if self._same_peer < LONE_AFTER or self._streak >= MAX_STREAK:
            return False
        if not self._streak:
            asyncio.get_running_loop().call_soon(self._loop_turned)
        self._streak += 1
        return True

    def _loop_turned(self) -> None:
        self._streak = 0
