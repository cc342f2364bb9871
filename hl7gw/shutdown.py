"""SIGINT and SIGTERM for every long-running ``hl7gw`` command: one place, one behaviour.

``hl7gw serve``, ``bridge``, ``function serve``, ``dev up`` and ``dev kafka`` run through
:func:`run_command`, and so must any later long-running command. What a user sees:

- the first SIGINT (Ctrl-C) or SIGTERM asks the command to stop: it stops accepting, finishes
  or hands back the work in flight within its drain deadline (``drain_s``), and exits 0;
- whatever happens, the process is gone ``drain_s + EXIT_MARGIN_S`` seconds after that
  signal: a stop still running then (a stuck socket) ends with ``os._exit`` and exit code
  128 + the signal's number, as does an exit held up for ``EXIT_MARGIN_S`` after the stop
  (a thread that is not a daemon, an event loop that does not close);
- a second SIGINT or SIGTERM exits at once, with 128 + its number;
- exit codes: 0 for a completed stop, 130 (SIGINT) or 143 (SIGTERM) when the process had to
  be ended before its stop completed, as a shell reports a process killed by that signal.
  Nothing acknowledged is lost either way: the gateway ACKs only what its spool committed,
  the bridge commits only offsets it delivered (see each command's documentation).

The handlers are Python-level ``signal.signal`` handlers, installed even when the signal was
ignored: a process started in the background by a non-interactive shell (``cmd &``, some CI
runners) inherits SIGINT ignored, and ``hl7gw dev kafka`` then never saw its SIGINT. In an
event loop, the loop's own signal wake-up is registered too, so a signal wakes the loop at
once; the handler itself runs between bytecodes of the main thread, so a second signal
exits even while the loop is busy.

Two more rules keep the signals here, and the tracebacks away:

- uvicorn servers run inside these commands are :class:`hl7gw.http_server.QuietServer`
  (uvicorn's own handlers would take the signal: ``hl7gw dev up`` ignored Ctrl-C);
- processes a command starts for itself (the gateway's mapping workers) are started inside
  :func:`children_ignore_interrupts`: a terminal's Ctrl-C reaches its whole foreground
  process group, and a worker interrupted mid-wait printed a ``KeyboardInterrupt``
  traceback. The command stops its workers itself.

This module imports only the standard library: the cloud function's package carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import Any, NoReturn, TypeVar

__all__ = [
    "DEFAULT_DRAIN_S",
    "EXIT_MARGIN_S",
    "Interrupted",
    "Shutdown",
    "children_ignore_interrupts",
    "run_command",
    "serve_until_stopped",
]

DEFAULT_DRAIN_S = 8.0  # a stop's own deadline; with EXIT_MARGIN_S, 10 s in all
EXIT_MARGIN_S = 2.0  # after the drain deadline, for the interpreter to exit
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")


class Interrupted(BaseException):
    """The first stop signal, raised inside :meth:`Shutdown.interruptible` (blocking code)."""


class Shutdown:
    """The stop request of one process: what its signals asked, and the deadline they set.

    Use it as a context manager (handlers installed on entry, the previous ones back on
    exit); :func:`run_command` does that for a command. In asyncio code, ``await
    shutdown.wait()`` or ``shutdown.on_stop(callback)``; in blocking code, ``with
    shutdown.interruptible():`` turns the first signal into :class:`Interrupted`.
    """

    def __init__(self, command: str, drain_s: float = DEFAULT_DRAIN_S) -> None:
        self.command = command
        self.drain_s = drain_s
        self.signal: signal.Signals | None = None  # the first stop signal, once received
        self._previous: dict[signal.Signals, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._callbacks: list[Callable[[], object]] = []
        self._wakeups: list[signal.Signals] = []  # the loop's signal wake-ups we registered
        self._interruptible = 0
        self._watchdog = _Watchdog()

    # handlers ----------------------------------------------------------------------

    def __enter__(self) -> Shutdown:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        self._detach()
        self._watchdog.disarm()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        """True once a stop signal came."""
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        """128 + the first signal's number (130 for SIGINT, 143 for SIGTERM); 0 before one."""
        return 0 if self.signal is None else 128 + int(self.signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        if self.signal is not None:
            _say(f"{self.command}: {sig.name} again: exiting now")
            os._exit(128 + signum)
        self.signal = sig
        _say(f"{self.command}: {sig.name}: stopping (at most {self.drain_s:g} s; "
             f"Ctrl-C or SIGTERM again exits at once)")
        self._watchdog.arm(self.drain_s + EXIT_MARGIN_S, 128 + signum,
                           f"{self.command}: not stopped {self.drain_s + EXIT_MARGIN_S:g} s "
                           f"after {sig.name}; exiting now")
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fire)
        if self._interruptible:
            raise Interrupted(sig.name)

    def _fire(self) -> None:
        if self._event is not None:
            self._event.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    # blocking code -----------------------------------------------------------------

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Inside, the first signal raises :class:`Interrupted` (also if it came before)."""
        if self.signal is not None:
            raise Interrupted(self.signal.name)
        self._interruptible += 1
        try:
            yield
        finally:
            self._interruptible -= 1

    # asyncio code ------------------------------------------------------------------

    def asyncio_run(self, main: Callable[[Shutdown], Awaitable[T]]) -> T:
        """``asyncio.run(main(self))`` with the signals wired to the new loop."""
        return asyncio.run(self._bound(main))

    async def _bound(self, main: Callable[[Shutdown], Awaitable[T]]) -> T:
        self._attach()
        try:
            return await main(self)
        finally:
            self._detach()
            # The loop's own end (cancelling leftovers, joining its executor) is bounded.
            self._watchdog.arm(EXIT_MARGIN_S + (self.drain_s if self.signal is None else 0),
                               self.exit_code or 1,
                               f"{self.command}: event loop did not close; exiting now",
                               replace=True)

    def _attach(self) -> asyncio.Event:
        """Bind to the running loop: signals wake it and reach :meth:`wait` and callbacks."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._event is not None:
            return self._event
        self._detach()
        self._loop, self._event = loop, asyncio.Event()
        if self._previous:  # our handlers are installed (main thread)
            for sig in STOP_SIGNALS:
                try:
                    loop.add_signal_handler(sig, _nothing)
                except (NotImplementedError, RuntimeError, ValueError):
                    continue
                signal.signal(sig, self._on_signal)  # the loop's wake-up fd stays set
                self._wakeups.append(sig)
        if self.signal is not None:
            self._fire()
        return self._event

    def _detach(self) -> None:
        loop, self._loop, self._event = self._loop, None, None
        wakeups, self._wakeups = self._wakeups, []
        if loop is None or loop.is_closed():
            return
        for sig in wakeups:
            loop.remove_signal_handler(sig)
            signal.signal(sig, self._on_signal)  # remove_signal_handler reset it

    async def wait(self) -> None:
        """Return once a stop signal came (at once if it came already)."""
        await self._attach().wait()

    def on_stop(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` in the running loop at the first stop signal (soon, if it came)."""
        self._attach()
        if self.signal is not None and self._loop is not None:
            self._loop.call_soon(callback)
        else:
            self._callbacks.append(callback)

    def leave(self, code: int) -> int:
        """The process is about to exit with ``code``: bound that, and any signal ends it."""
        if self._previous:
            for sig in STOP_SIGNALS:
                signal.signal(sig, _exit_now)
        self._watchdog.arm(EXIT_MARGIN_S, self.exit_code or code,
                           f"{self.command}: interpreter exit held up; exiting now",
                           replace=True)
        return code


def run_command(command: str, main: Callable[[Shutdown], int | None], *,
                drain_s: float = DEFAULT_DRAIN_S) -> NoReturn:
    """Run a long-running command's ``main(shutdown)`` and exit with its code (0 for None).

    :class:`Interrupted` out of ``main`` is a completed stop (exit 0). The exit itself is
    bounded too (see the module docstring).
    """
    # Entered, never exited: the handlers stay until the process ends (leave() swaps them).
    shutdown = Shutdown(command, drain_s).__enter__()
    try:
        code = main(shutdown) or 0
    except Interrupted:
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(shutdown.leave(code))


def serve_until_stopped(command: str, main: Callable[[Shutdown], Awaitable[int | None]], *,
                        drain_s: float = DEFAULT_DRAIN_S) -> NoReturn:
    """:func:`run_command` for an asyncio ``main``: it runs until it returns, which it does
    after ``await shutdown.wait()`` and its own stop."""
    run_command(command, lambda shutdown: shutdown.asyncio_run(main), drain_s=drain_s)


@contextlib.contextmanager
def children_ignore_interrupts() -> Iterator[None]:
    """Processes started inside inherit SIGINT blocked, so a Ctrl-C never interrupts them.

    A terminal sends Ctrl-C to its whole foreground process group; the parent decides when
    its workers stop. Blocking (not ignoring) it in the parent leaves no window in which
    the parent's own SIGINT would be lost: it is delivered when unblocked.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _nothing() -> None:
    """The loop's signal callback: the wake-up is what is wanted, the handler does the work."""


def _exit_now(signum: int, frame: FrameType | None) -> None:
    """A signal while the process exits: end it now."""
    os._exit(128 + signum)


def _say(text: str) -> None:
    """One line on stderr, written directly: safe in a signal handler (no buffer locks)."""
    with contextlib.suppress(OSError):
        os.write(2, (text + "\n").encode("utf-8", "replace"))


class _Watchdog:
    """Ends the process at a deadline, from a daemon thread; a later arm never extends it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._deadline: float | None = None
        self._code = 1
        self._message = ""
        self._thread: threading.Thread | None = None

    def arm(self, within: float, code: int, message: str, *, replace: bool = False) -> None:
        """End the process in ``within`` s, unless armed earlier (``replace``: a new phase)."""
        with self._lock:
            deadline = time.monotonic() + within
            if self._deadline is not None and self._deadline <= deadline and not replace:
                return
            self._deadline, self._code, self._message = deadline, code, message
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="shutdown-watchdog",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def disarm(self) -> None:
        with self._lock:
            self._deadline = None
        self._wake.set()

    def _run(self) -> None:
        while True:
            with self._lock:
                deadline = self._deadline
                self._wake.clear()
            if deadline is None:
                self._wake.wait()
                continue
            if self._wake.wait(max(deadline - time.monotonic(), 0.0)):
                continue  # re-armed or disarmed
            with self._lock:
                if self._deadline is None or time.monotonic() < self._deadline:
                    continue
                code, message = self._code, self._message
            _say(message)
            os._exit(code)
