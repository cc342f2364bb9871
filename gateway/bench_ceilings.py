"""The ceilings ``hl7gw bench intake`` measures the gateway against, in the same run.

Three minimal asyncio MLLP servers on loopback, each answering every frame with one fixed
ACK, so the gateway's figures can be read against what the transport and the disk allow:

- :class:`EchoServer`: read, frame, answer. What the transport allows; nothing durable.
- :class:`FsyncFloorServer`: each frame written, length-prefixed, at the next offset of a
  preallocated file and ``fdatasync``-ed before its ACK, inline on the event loop thread.
  One sync per frame: the most a lone sender waiting for each ACK can get from this disk.
- :class:`GroupCommitServer`: the same file, but every frame that arrived while the loop
  turned a few times is written with one ``os.write`` and made durable with ONE
  ``fdatasync``, then all of them are answered. What many senders can get from this disk
  when they share syncs, as the spool's writer has them do.

The file is created up front by writing zeros and synced once (:meth:`FrameLog.create`),
before any timing: overwriting written blocks lets ``fdatasync`` flush data alone, where
``fallocate``'s unwritten extents would make every sync journal a metadata change too.

The senders' process (:func:`senders_main`) lives here too: each measurement spawns one,
and this module is quick to import (the gateway's intake is not).
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gateway.errors import GatewayError
from gateway.mllp.client import MllpClient
from gateway.mllp.framing import FrameDecoder, encode_frame

Sync = Callable[[int], None]
_PREFIX = struct.Struct(">I")  # each frame's length, big-endian, before its bytes
PREFIX_BYTES = _PREFIX.size
_ZEROS = bytes(1024 * 1024)
GATHER_YIELDS = 3  # loop turns before a batch is taken: as the spool's writer (store.py)


class BenchError(GatewayError):
    """A benchmark could not run: its file could not be made or synced, or a server failed."""


def frame_log_size(frames: Sequence[bytes]) -> int:
    """Bytes a :class:`FrameLog` needs to hold ``frames`` once each, length prefixes included."""
    return sum(PREFIX_BYTES + len(f) for f in frames)


class FrameLog:
    """A preallocated file that frames are written into, one after the other.

    Each frame goes in as a 4-byte big-endian length and its bytes, at the next offset.
    Past the end, writing starts again at offset 0 (the blocks stay allocated, so a sync
    costs the same): size the file for the run with :func:`frame_log_size`.
    ``sync`` (``os.fdatasync``) can be replaced, e.g. by a wrapper that counts the calls.
    """

    def __init__(self, fd: int, size: int, *, sync: Sync = os.fdatasync) -> None:
        self.fd = fd
        self.size = size
        self.sync = sync
        self.offset = 0
        self.frames = 0
        self.syncs = 0

    @classmethod
    def create(cls, path: Path, size: int, *, sync: Sync = os.fdatasync) -> FrameLog:
        """Create ``path`` filled with ``size`` zero bytes (rounded up to 4 KiB), synced."""
        size = max(4096, -(-size // 4096) * 4096)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise BenchError(f"cannot create the bench file {path}: {exc.strerror}: choose "
                             "a writable folder with --dir") from exc
        try:
            left = size
            while left:
                left -= os.write(fd, _ZEROS[:left])
            os.fsync(fd)
            _sync_folder(path.parent)
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError as exc:
            os.close(fd)
            raise BenchError(f"cannot preallocate {size:,} bytes in {path}: {exc.strerror}: "
                             "free some space or choose another --dir") from exc
        return cls(fd, size, sync=sync)

    def append(self, frames: Sequence[bytes]) -> None:
        """Write ``frames`` at the next offset with one ``os.write``, then sync once."""
        data = b"".join(_PREFIX.pack(len(f)) + f for f in frames)
        if self.offset + len(data) > self.size:
            if len(data) > self.size:
                raise BenchError(f"{len(data):,} bytes do not fit in a {self.size:,}-byte "
                                 "bench file: size it for the run")
            os.lseek(self.fd, 0, os.SEEK_SET)
            self.offset = 0
        view = memoryview(data)
        while view:  # a regular file takes it all at once; a short write goes on
            view = view[os.write(self.fd, view):]
        self.offset += len(data)
        self.sync(self.fd)
        self.frames += len(frames)
        self.syncs += 1

    def close(self) -> None:
        """Close the file (it stays on disk: the caller's folder decides its fate)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> FrameLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sync_folder(folder: Path) -> None:
    """Make the new file's name durable too, as a real store would before trusting it."""
    fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Failed(Exception):
    """A write or sync failed (kept in the server's ``failure``): end what was doing it."""


class _Server:
    """An MLLP server on 127.0.0.1 (any port): ``async with`` it, then send to ``port``.

    Subclasses say what happens to the frames one read brought (:meth:`_frames`). A failed
    write or sync closes the connection, and leaving the ``async with`` raises it as a
    :class:`BenchError`, so a run never reports figures for a disk that refused.
    """

    name = "server"

    def __init__(self, ack: bytes) -> None:
        self.ack_frame = encode_frame(ack)
        self.port = 0
        self.failure: OSError | BenchError | None = None
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        # The server's own failure is the cause of a measurement that ended without figures.
        if self.failure is not None and (exc is None or isinstance(exc, BenchError)):
            raise BenchError(f"the {self.name} failed: {self.failure}") from self.failure

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        try:
            while data := await reader.read(65536):
                await self._frames(decoder.feed(data), writer)
                await writer.drain()
        except (_Failed, ConnectionError):
            pass  # the failure is kept in self.failure; a peer that left is no failure
        finally:
            writer.close()

    def _keep(self, log: FrameLog, frames: list[bytes]) -> None:
        """``log.append(frames)``; a failure is kept for ``__aexit__`` and ends the caller."""
        try:
            log.append(frames)
        except (OSError, BenchError) as exc:
            self.failure = self.failure or exc
            raise _Failed from exc

    async def _frames(self, frames: list[bytes], writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class EchoServer(_Server):
    """The transport's ceiling: read, frame, answer; nothing kept."""

    name = "bare asyncio echo"

    async def _frames(self, frames: list[bytes], writer: asyncio.StreamWriter) -> None:
        for _ in frames:
            writer.write(self.ack_frame)


class FsyncFloorServer(_Server):
    """Each frame written and ``fdatasync``-ed on its own before its ACK, on the loop thread."""

    name = "fsync floor"

    def __init__(self, log: FrameLog, ack: bytes) -> None:
        super().__init__(ack)
        self.log = log

    async def _frames(self, frames: list[bytes], writer: asyncio.StreamWriter) -> None:
        for frame in frames:
            self._keep(self.log, [frame])
            writer.write(self.ack_frame)


class GroupCommitServer(_Server):
    """Frames from every connection gathered, written and synced once per batch, then ACKed.

    One task takes the queue after letting the loop turn ``gather_yields`` times, so that
    frames which arrived together on other connections join the batch; the write and the
    sync run inline on the loop thread, as the floor's do.
    """

    name = "group-commit ceiling"

    def __init__(self, log: FrameLog, ack: bytes, *, gather_yields: int = GATHER_YIELDS) -> None:
        super().__init__(ack)
        self.log = log
        self.gather_yields = gather_yields
        self.batches: list[int] = []  # frames per sync, in order
        self._queue: asyncio.Queue[tuple[bytes, asyncio.StreamWriter]] = asyncio.Queue()
        self._committer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self._committer = asyncio.create_task(self._commit_loop(), name="bench-group-commit")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._committer is not None:
            self._committer.cancel()
            try:
                await self._committer
            except asyncio.CancelledError:
                pass
            self._committer = None
        await super().__aexit__(exc_type, exc, tb)

    async def _frames(self, frames: list[bytes], writer: asyncio.StreamWriter) -> None:
        for frame in frames:
            self._queue.put_nowait((frame, writer))

    async def _commit_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            for _ in range(self.gather_yields):
                await asyncio.sleep(0)  # let frames that arrived with this one queue up
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                self._keep(self.log, [frame for frame, _ in batch])
            except _Failed:
                for _, writer in batch:
                    writer.close()  # no ACK for what was not kept
                continue
            self.batches.append(len(batch))
            for _, writer in batch:
                if not writer.is_closing():
                    writer.write(self.ack_frame)


def senders_main(port: int, messages: list[bytes], connections: int, out: Any) -> None:
    """Child process: ``connections`` senders, each waiting for its ACK before the next.

    Sends ``(seconds, ACK latencies, CPU seconds)`` down the pipe ``out`` (the CPU time
    this process spent sending: on a small machine the senders share the cores with the
    server they measure); a sender that fails ends the process without sending, which the
    parent sees as the pipe closing.
    """
    latencies: list[float] = []

    async def sender(part: list[bytes]) -> None:
        async with MllpClient("127.0.0.1", port, timeout=30) as client:
            for message in part:
                began = time.perf_counter()
                await client.send(message)
                latencies.append(time.perf_counter() - began)

    async def run() -> float:
        parts = [messages[i::connections] for i in range(connections)]
        began = time.perf_counter()
        await asyncio.gather(*(sender(p) for p in parts))
        return time.perf_counter() - began

    cpu_before = time.process_time()
    elapsed = asyncio.run(run())
    out.send((elapsed, latencies, time.process_time() - cpu_before))
    out.close()
