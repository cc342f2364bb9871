"""A partition's lane in the bridge: its bounded record queue and the wake-up of its task.

Kept apart from ``bridge.py`` so the consume/deliver/commit loop reads on its own; the lane
holds no policy (pausing, committing and retrying stay in ``Bridge``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from aiokafka import TopicPartition


class Lane:
    """One partition's bounded queue of records and the task that delivers them in order."""

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.queue: deque[Any] = deque()
        self.wakeup = asyncio.Event()
        self.paused = False
        self.closing = False  # stopping or revoked: finish the record in flight, no more
        self.task: asyncio.Task[None] | None = None

    async def next_ready(self, stopping: asyncio.Event) -> bool:
        """Wait for a record to deliver; False once the lane should end."""
        while not self.queue:
            if self.closing or stopping.is_set():
                return False
            self.wakeup.clear()
            await self.wakeup.wait()
        return not (self.closing or stopping.is_set())
