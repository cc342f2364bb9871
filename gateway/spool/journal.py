"""The intake journal: append-only, preallocated segment files in front of the SQLite spool.

Intake's durable ACK waits for one thing: the message's bytes on stable storage. SQLite's
``COMMIT`` (WAL, ``synchronous=FULL``) gives that, but at the cost of several pages per
commit into a WAL file that keeps growing and being checkpointed, measured at about a
third of what the disk can do with one ``fdatasync`` per commit. The journal gives the
same guarantee at the disk's price: each batch of records is written with one ``pwrite``
into a segment file whose blocks were written (zero-filled) when it was made, so the
``fdatasync`` that follows has no file-size or extent change to journal, only data.

Layout (docs/journal.md): a folder of segments ``seg-<first seq>.jnl``, each
``segment_bytes`` long, starting with a 32-byte header (magic, version, first seq), then
records. A record is a 16-byte header (payload length, CRC-32 of seq + payload, seq) and
its payload. Every record has the next sequence number; the log ends at the first record
whose length is 0 (never written), runs past the segment, fails its CRC, or breaks the
sequence. Segments are zero-filled before use (recycled ones too), so anything else
after the end is a torn tail: a batch that a crash cut short, never ACKed. On open that
end is found, and a torn tail is zeroed and reported.

The journal knows nothing about what the payloads mean: :class:`~gateway.spool.store.Spool`
encodes them (gateway/spool/journal_records.py), indexes them into SQLite after the ACK,
keeps in SQLite the last seq indexed (in the same transaction as the rows), and tells the
journal which seq SQLite holds durably, so that segments wholly before it are recycled:
zeroed over and renamed to become the next spare, keeping their blocks.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import SpoolError

log = logging.getLogger("hl7gw.spool.journal")

MAGIC = b"HL7GWJNL"
VERSION = 1
_SEGMENT_HEADER = struct.Struct("<8sIQQ4x")  # magic, version, first seq, spool id: 32 bytes
_RECORD = struct.Struct("<IIQ")  # payload length, crc32(seq + payload), seq: 16 bytes
_SEQ = struct.Struct("<Q")
_ZEROS = bytes(1 << 20)
_NAME = re.compile(r"^seg-(\d{20})\.jnl$")
DEFAULT_SEGMENT_BYTES = 16 << 20


@dataclass(frozen=True)
class Cut:
    """What opening the journal cut from a segment's tail: never-acknowledged bytes."""

    segment: str
    offset: int
    bytes: int
    reason: str


@dataclass
class _Segment:
    path: Path
    first_seq: int
    last_seq: int  # first_seq - 1 while empty
    end: int  # offset where the next record goes


def _seg_name(first_seq: int) -> str:
    return f"seg-{first_seq:020d}.jnl"


def _crc(seq: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq)))


def encode_record(seq: int, payload: bytes) -> bytes:
    """One record as written: header then payload."""
    return _RECORD.pack(len(payload), _crc(seq, payload), seq) + payload


class Journal:
    """The segment files of one spool; one process at a time (an exclusive lock file).

    Not thread-safe: the spool's writer calls :meth:`append` and :meth:`recycle` from one
    thread (or inline on the event loop); :meth:`prepare_spare` may run on another.
    """

    def __init__(self, folder: Path, *, spool_id: int,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if segment_bytes < 4096:
            raise ValueError("journal segments must be at least 4096 bytes")
        self.folder = folder
        # Which spool file the records belong to (journal_state.spool_id): a journal kept
        # next to a new, empty spool must not be replayed into it.
        self.spool_id = spool_id
        self.segment_bytes = segment_bytes
        self.segments: list[_Segment] = []
        self.next_seq = 1
        self.cuts: list[Cut] = []
        self.fsyncs = 0
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._spare_lock = threading.Lock()

    # -- open and recover -----------------------------------------------------------------

    def open(self, after_seq: int) -> list[tuple[int, bytes]]:
        """Lock the folder, find the log's end, cut a torn tail; the records after
        ``after_seq`` (those SQLite may lack), in order. Raises SpoolError."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock()
            found = self._scan(after_seq)
            if not self.segments:
                self._start_segment(max(after_seq, self.next_seq - 1) + 1)
            else:
                tail = self.segments[-1]
                self.next_seq = tail.last_seq + 1
                self._fd = os.open(tail.path, os.O_RDWR)
            self._remove_stale_temp()
        except OSError as exc:
            self.close()
            raise SpoolError(f"journal {self.folder}: cannot open ({exc}); check that the "
                             "folder exists, is writable and is on a local disk") from exc
        except BaseException:
            self.close()
            raise
        return found

    def _lock(self) -> None:
        fd = os.open(self.folder / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolError(
                f"journal {self.folder} is in use by another hl7gw process (a second "
                "gateway on the same spool?); stop it, or give this one another "
                "spool.path") from None
        self._lock_fd = fd

    def _scan(self, after_seq: int) -> list[tuple[int, bytes]]:
        found: list[tuple[int, bytes]] = []
        paths = sorted(p for p in self.folder.iterdir() if _NAME.match(p.name))
        for path in paths:
            segment, records = self._read_segment(path, is_last=path == paths[-1])
            if segment is None:
                continue
            if self.segments and segment.first_seq != self.segments[-1].last_seq + 1:
                log.error("journal sequence gap", extra={
                    "segment": path.name, "expected_seq": self.segments[-1].last_seq + 1,
                    "first_seq": segment.first_seq})
            self.segments.append(segment)
            found.extend(r for r in records if r[0] > after_seq)
        if self.segments:
            self.next_seq = self.segments[-1].last_seq + 1
        return found

    def _read_segment(self, path: Path, *, is_last: bool
                      ) -> tuple[_Segment | None, list[tuple[int, bytes]]]:
        data = path.read_bytes()
        if len(data) < _SEGMENT_HEADER.size:
            log.warning("journal segment without a header removed", extra={"segment": path.name})
            path.unlink()
            return None, []
        magic, version, first_seq, spool_id = _SEGMENT_HEADER.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise SpoolError(f"journal {path} is not an hl7gw journal segment (version "
                             f"{version}); move it out of {self.folder}")
        if spool_id != self.spool_id:
            raise SpoolError(
                f"journal {self.folder} belongs to another spool file than the one opened "
                "(was the spool replaced by a new, empty one?); if its messages are all "
                "published, move the folder aside; else put the spool file back")
        offset, seq, records = _SEGMENT_HEADER.size, first_seq, []
        reason = ""
        while True:
            if offset + _RECORD.size > len(data):
                break
            length, crc, rec_seq = _RECORD.unpack_from(data, offset)
            if length == 0 and crc == 0 and rec_seq == 0:
                break  # never written: the end
            start = offset + _RECORD.size
            if rec_seq != seq:
                reason = f"seq {rec_seq} where {seq} was due"
                break
            if start + length > len(data):
                reason = "record runs past the segment"
                break
            payload = data[start:start + length]
            if _crc(rec_seq, payload) != crc:
                reason = "checksum mismatch"
                break
            records.append((rec_seq, payload))
            offset, seq = start + length, seq + 1
        segment = _Segment(path, first_seq, seq - 1, offset)
        if not reason and is_last and data[offset:].strip(b"\0"):
            # A torn write can reach the disk without its first sector: zeros where the
            # header should be, the rest after it. Not a record; cleared like any tail.
            reason = "bytes after the end of the log"
        if reason:
            self._cut(segment, reason, len(data), is_last=is_last)
        return segment, records

    def _cut(self, segment: _Segment, reason: str, size: int, *, is_last: bool) -> None:
        """Zero everything after the last good record: what a crash left half-written."""
        # The last segment is filled back out to full size (a truncated file would make every
        # append grow it again); an earlier one only has its damaged tail zeroed.
        end = max(size, self.segment_bytes) if is_last else size
        self.cuts.append(Cut(segment.path.name, segment.end, end - segment.end, reason))
        log.warning("journal tail cut", extra={
            "segment": segment.path.name, "offset": segment.end, "bytes": end - segment.end,
            "reason": reason, "last_segment": is_last})
        fd = os.open(segment.path, os.O_RDWR)
        try:
            _fill_zeros(fd, segment.end, end)
            os.fdatasync(fd)
        finally:
            os.close(fd)

    # -- append ---------------------------------------------------------------------------

    def append(self, payloads: list[bytes]) -> int:
        """Write ``payloads`` as the next records and ``fdatasync``: when this returns they
        are on stable storage. The last seq written. Raises SpoolError."""
        if self._fd is None:
            raise SpoolError("journal is not open")
        seq = self.next_seq
        records = [encode_record(seq + i, p) for i, p in enumerate(payloads)]
        size = sum(map(len, records))
        if size + _SEGMENT_HEADER.size > self.segment_bytes:
            # A batch larger than a segment: split it, each part in one write and fsync.
            half = len(payloads) // 2
            if half == 0:
                raise SpoolError(f"a {size}-byte record does not fit a journal segment "
                                 f"({self.segment_bytes} bytes); raise spool.journal_"
                                 "segment_mb above the listener's max_message_bytes")
            self.append(payloads[:half])
            return self.append(payloads[half:])
        tail = self.segments[-1]
        try:
            if tail.end + size > self.segment_bytes:
                tail = self._rotate()
            written = os.pwrite(self._fd, b"".join(records), tail.end)
            try:
                os.fdatasync(self._fd)
            except OSError:
                # Never acknowledged: the next append goes over these records and takes
                # their numbers. A shorter one would leave some of them after it, numbered
                # to follow it, for a restart to replay: zeroed (synced with the next).
                with contextlib.suppress(OSError):
                    os.pwrite(self._fd, bytes(written), tail.end)
                raise
        except OSError as exc:
            raise SpoolError(f"journal {self.folder}: write failed ({exc}); check the disk "
                             "(full? read-only?): intake answers AE until it works") from exc
        self.fsyncs += 1
        tail.end += size
        tail.last_seq = seq + len(payloads) - 1
        self.next_seq = tail.last_seq + 1
        return tail.last_seq

    def start_fresh_segment(self) -> None:
        """Go on in a new segment now, so the current one can be recycled (after a key is
        turned on, the records written clear before are overwritten soon, not a segment
        later)."""
        if self.segments[-1].last_seq >= self.segments[-1].first_seq:
            self._rotate()

    def _rotate(self) -> _Segment:
        """Close the full segment and start the next (a spare, renamed, if one is ready)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return self._start_segment(self.next_seq)

    def _start_segment(self, first_seq: int) -> _Segment:
        path = self.folder / _seg_name(first_seq)
        spare = self._take_spare()
        if spare is None:
            spare = self._make_zeroed(self.folder / "new.tmp")
        os.rename(spare, path)
        fd = os.open(path, os.O_RDWR)
        # The header, and zeros over where the first record goes: a recycled segment's old
        # first record must not pass for the new one's.
        os.pwrite(fd, _SEGMENT_HEADER.pack(MAGIC, VERSION, first_seq, self.spool_id)
                  + bytes(_RECORD.size), 0)
        os.fdatasync(fd)
        _fsync_dir(self.folder)
        self._fd = fd
        segment = _Segment(path, first_seq, first_seq - 1, _SEGMENT_HEADER.size)
        self.segments.append(segment)
        self.next_seq = first_seq
        return segment

    # -- recycle --------------------------------------------------------------------------

    def recycle(self, durable_seq: int) -> int:
        """Retire segments whose every record SQLite holds durably (seq <= ``durable_seq``):
        the first is kept to become the next spare (:meth:`prepare_spare` zeroes it, off the
        write path), others are deleted. Segments retired."""
        done = 0
        while len(self.segments) > 1 and self.segments[0].last_seq <= durable_seq:
            old = self.segments.pop(0)
            with self._spare_lock:
                if self._spare_path().exists() or self._retired_path().exists():
                    old.path.unlink()
                else:
                    os.rename(old.path, self._retired_path())
            done += 1
        if done:
            _fsync_dir(self.folder)
        return done

    def prepare_spare(self) -> None:
        """Make the spare segment the next rotation takes, if there is none: a retired
        segment zeroed over (its blocks are kept), else a new zero-filled file. Zeroes,
        so that nothing after the log's end can pass for a record or a torn tail."""
        with self._spare_lock:
            if self._spare_path().exists():
                return
            source = self._retired_path() if self._retired_path().exists() else None
            if source is not None:
                os.rename(source, self.folder / "spare.tmp")
        made = self._make_zeroed(self.folder / "spare.tmp", reuse=source is not None)
        with self._spare_lock:
            os.rename(made, self._spare_path())
        _fsync_dir(self.folder)

    def _spare_path(self) -> Path:
        return self.folder / "spare.jnl"

    def _retired_path(self) -> Path:
        return self.folder / "retired.jnl"

    def _take_spare(self) -> Path | None:
        with self._spare_lock:
            spare = self._spare_path()
            if spare.exists():
                if spare.stat().st_size >= self.segment_bytes:
                    return spare
                spare.unlink()  # made for a smaller segment size than configured now
        return None

    def _make_zeroed(self, path: Path, *, reuse: bool = False) -> Path:
        flags = os.O_RDWR | os.O_CREAT | (0 if reuse else os.O_TRUNC)
        fd = os.open(path, flags, 0o600)
        try:
            _fill_zeros(fd, 0, self.segment_bytes)
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

    def _remove_stale_temp(self) -> None:
        for name in ("new.tmp", "spare.tmp"):  # a spare being made when the process died
            (self.folder / name).unlink(missing_ok=True)

    # -- close ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the files and release the lock (the segments stay; safe to call twice)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        """Every record in the live segments, in order (for tools and tests)."""
        for segment in self.segments:
            data = segment.path.read_bytes()
            offset = _SEGMENT_HEADER.size
            for seq in range(segment.first_seq, segment.last_seq + 1):
                length = _RECORD.unpack_from(data, offset)[0]
                start = offset + _RECORD.size
                yield seq, data[start:start + length]
                offset = start + length


def _fill_zeros(fd: int, start: int, end: int) -> None:
    offset = start
    while offset < end:
        offset += os.pwrite(fd, _ZEROS[:min(len(_ZEROS), end - offset)], offset)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
