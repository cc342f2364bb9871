"""hl7gw.shutdown in one process: what the first stop signal reaches, and what is put back.

The timing (the watchdog, a second signal, exit codes) is tested on real processes in
tests/integration/test_shutdown.py.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from hl7gw.shutdown import Interrupted, Shutdown


async def test_the_first_signal_wakes_wait_and_the_callbacks_and_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    called: list[str] = []
    with Shutdown("test", drain_s=30) as shutdown:
        shutdown.on_stop(lambda: called.append("stop"))
        assert not shutdown.requested and shutdown.exit_code == 0
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(shutdown.wait(), 30)
        await asyncio.sleep(0)  # the callbacks run in the loop
        assert called == ["stop"]
        assert shutdown.signal == signal.SIGTERM and shutdown.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) == before


async def test_a_callback_added_after_the_signal_still_runs() -> None:
    called: list[str] = []
    with Shutdown("test", drain_s=30) as shutdown:
        await asyncio.sleep(0)
        signal.raise_signal(signal.SIGINT)
        await asyncio.wait_for(shutdown.wait(), 30)
        shutdown.on_stop(lambda: called.append("late"))
        await asyncio.sleep(0)
    assert called == ["late"]


def test_blocking_code_sees_the_signal_as_interrupted_not_keyboardinterrupt() -> None:
    with Shutdown("test", drain_s=30) as shutdown:
        with pytest.raises(Interrupted), shutdown.interruptible():
            signal.raise_signal(signal.SIGINT)
        assert shutdown.signal == signal.SIGINT
        # Once stopping, entering blocking code is refused at once.
        with pytest.raises(Interrupted), shutdown.interruptible():
            pass


def test_a_signal_outside_blocking_code_only_asks_to_stop() -> None:
    with Shutdown("test", drain_s=30) as shutdown:
        signal.raise_signal(signal.SIGTERM)
        assert shutdown.requested
