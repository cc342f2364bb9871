"""The intake bench's ceilings against real files and loopback sockets; the fs lookup; --json.

No timings are asserted: what is checked is what each ceiling does (bytes on disk, syncs
per frame, ACKs per connection) and the shape of what the command reports.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.bench import CEILINGS, BenchResult, _median_of, ceiling_for
from gateway.bench_ceilings import (
    BenchError,
    EchoServer,
    FrameLog,
    FsyncFloorServer,
    GroupCommitServer,
    frame_log_size,
)
from gateway.cli import main
from gateway.fsinfo import file_system_of, mount_of, parse_mountinfo, parse_mounts
from gateway.mllp.client import MllpClient, MllpClientError
from gateway.mllp.framing import encode_frame

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "adt_a01.hl7"
ACK = b"MSH|^~\\&|GW|HOSP|LAB|HOSP|20240101||ACK|BENCH|P|2.5\rMSA|AA|BENCH\r"


def message(i: int, pad: int = 0) -> bytes:
    return f"MSH|^~\\&|LAB|HOSP|GW|HOSP|20240101||ADT^A01|M{i}|P|2.5\rPID|{'x' * pad}\r".encode()


def read_log(path: Path) -> tuple[list[tuple[int, bytes]], bytes]:
    """The frames in a frame log with their offsets, and the bytes after the last one."""
    data = path.read_bytes()
    frames, offset = [], 0
    while offset + 4 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        if length == 0:
            break
        frames.append((offset, data[offset + 4: offset + 4 + length]))
        offset += 4 + length
    return frames, data[offset:]


class CountingSync:
    """``os.fdatasync`` that counts its calls; ``before_first`` runs inside the first one."""

    def __init__(self, before_first: Callable[[], None] | None = None) -> None:
        self.calls = 0
        self.before_first = before_first

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.calls == 1 and self.before_first is not None:
            self.before_first()
        os.fdatasync(fd)


# -- the file -----------------------------------------------------------------------------

def test_the_log_is_preallocated_with_zeros_rounded_up_to_whole_pages(tmp_path: Path) -> None:
    with FrameLog.create(tmp_path / "f.log", 5000) as log:
        assert log.size == 8192 and log.offset == 0
    assert (tmp_path / "f.log").read_bytes() == bytes(8192)


def test_frame_log_size_counts_a_prefix_per_frame() -> None:
    assert frame_log_size([b"abc", b"", b"hello"]) == 3 * 4 + 8


def test_a_folder_that_does_not_exist_is_a_bench_error_naming_dir(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="--dir"):
        FrameLog.create(tmp_path / "missing" / "f.log", 100)


def test_past_the_end_writing_starts_again_at_offset_zero(tmp_path: Path) -> None:
    sync = CountingSync()
    with FrameLog.create(tmp_path / "f.log", 4096, sync=sync) as log:
        log.append([b"a" * 3000])
        log.append([b"b" * 2000])  # 3004 + 2004 > 4096: goes to offset 0
        assert log.offset == 2004 and (log.frames, log.syncs, sync.calls) == (2, 2, 2)
        with pytest.raises(BenchError, match="size it for the run"):
            log.append([b"c" * 5000])
    frames, _ = read_log(tmp_path / "f.log")
    assert frames[0] == (0, b"b" * 2000)


# -- the servers --------------------------------------------------------------------------

async def test_the_echo_answers_each_frame_with_the_fixed_ack() -> None:
    async with EchoServer(ACK) as server, MllpClient("127.0.0.1", server.port) as client:
        assert [await client.send(message(i)) for i in range(3)] == [ACK] * 3


async def test_the_floor_persists_each_frame_length_prefixed_in_order(tmp_path: Path) -> None:
    sent = [message(0), message(1, pad=300), message(2, pad=7)]
    sync = CountingSync()
    path = tmp_path / "floor.log"
    with FrameLog.create(path, frame_log_size(sent) + 100, sync=sync) as log:
        async with FsyncFloorServer(log, ACK) as server, \
                MllpClient("127.0.0.1", server.port) as client:
            acks = [await client.send(m) for m in sent]
    assert acks == [ACK] * 3
    frames, rest = read_log(path)
    offsets = [0, 4 + len(sent[0]), 8 + len(sent[0]) + len(sent[1])]
    assert frames == list(zip(offsets, sent, strict=True))
    assert rest == bytes(len(rest))  # the rest of the preallocated file is still zeros
    assert sync.calls == 3  # one fdatasync per frame


def _threaded_senders(port: int, messages: list[bytes],
                      all_sent: threading.Event) -> tuple[list[threading.Thread], list[bytes]]:
    """One blocking client per message, each on its own connection, sending at once."""
    acks: list[bytes] = []
    lock = threading.Lock()

    def send(msg: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(encode_frame(msg))
            with lock:
                acks.append(b"")
                if len(acks) == len(messages):
                    all_sent.set()
            reply = b""
            while not reply.endswith(b"\x1c\r"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
            with lock:
                acks.remove(b"")
                acks.append(reply)

    threads = [threading.Thread(target=send, args=(m,)) for m in messages]
    for t in threads:
        t.start()
    return threads, acks


Ceiling = FsyncFloorServer | GroupCommitServer


async def _concurrent_run(server: Callable[[FrameLog], Ceiling], path: Path,
                          senders: int) -> tuple[CountingSync, Ceiling, list[bytes],
                                                 list[bytes]]:
    """``senders`` connections each send one frame at once; the first sync waits for all
    of them to be sent, so the frames behind it have all arrived when it returns."""
    sent = [message(i, pad=i) for i in range(senders)]
    all_sent = threading.Event()

    def wait_for_all() -> None:
        all_sent.wait(10)

    def join_all(threads: list[threading.Thread]) -> None:
        for t in threads:
            t.join(20)

    sync = CountingSync(before_first=wait_for_all)
    with FrameLog.create(path, frame_log_size(sent), sync=sync) as log:
        async with server(log) as running:
            threads, acks = _threaded_senders(running.port, sent, all_sent)
            await asyncio.to_thread(join_all, threads)
    return sync, running, sent, acks


async def test_group_commit_answers_everyone_with_fewer_syncs_than_frames(
        tmp_path: Path) -> None:
    sync, server, sent, acks = await _concurrent_run(
        lambda log: GroupCommitServer(log, ACK), tmp_path / "group.log", 6)
    assert acks == [encode_frame(ACK)] * 6  # every connection got its answer
    assert 1 <= sync.calls < 6
    assert isinstance(server, GroupCommitServer)
    assert sum(server.batches) == 6 and len(server.batches) == sync.calls
    frames, _ = read_log(tmp_path / "group.log")
    assert sorted(f for _, f in frames) == sorted(sent)  # each frame on disk, once


async def test_the_floor_syncs_once_per_frame_even_with_concurrent_senders(
        tmp_path: Path) -> None:
    sync, _server, sent, acks = await _concurrent_run(
        lambda log: FsyncFloorServer(log, ACK), tmp_path / "floor.log", 6)
    assert acks == [encode_frame(ACK)] * 6
    assert sync.calls == 6
    frames, _ = read_log(tmp_path / "floor.log")
    assert sorted(f for _, f in frames) == sorted(sent)


@pytest.mark.parametrize("server_class", [FsyncFloorServer, GroupCommitServer])
async def test_a_failed_sync_drops_the_connection_and_fails_the_run(
        tmp_path: Path, server_class: type[FsyncFloorServer] | type[GroupCommitServer]) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with FrameLog.create(tmp_path / "f.log", 4096, sync=broken) as log:
        with pytest.raises(BenchError, match="Input/output error"):
            async with server_class(log, ACK) as server:
                async with MllpClient("127.0.0.1", server.port, timeout=10) as client:
                    with pytest.raises(MllpClientError):  # no ACK for what was not kept
                        await client.send(message(0))


# -- the file system ----------------------------------------------------------------------

MOUNTINFO = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 8:16 / /data rw,relatime shared:5 - xfs /dev/sdb rw
31 30 0:40 / /data/spool rw master:1 shared:7 - tmpfs tmpfs rw
32 22 8:32 / /data2 rw - ext4 /dev/sdc rw
33 22 8:48 / /mnt/my\\040disk rw - vfat /dev/sdd1 rw
34 22 8:64 / /data2 rw - btrfs /dev/sde rw
"""


@pytest.mark.parametrize(("path", "mount_point", "fs_type", "device"), [
    ("/data/spool/var/spool.db", "/data/spool", "tmpfs", "tmpfs"),
    ("/data/spoolish", "/data", "xfs", "/dev/sdb"),  # a prefix, not a parent
    ("/data", "/data", "xfs", "/dev/sdb"),
    ("/data2x/y", "/", "ext4", "/dev/vda"),
    ("/data2/y", "/data2", "btrfs", "/dev/sde"),  # mounted over: the later mount wins
    ("/mnt/my disk/f", "/mnt/my disk", "vfat", "/dev/sdd1"),
])
def test_the_longest_matching_mount_point_holds_a_path(path: str, mount_point: str,
                                                       fs_type: str, device: str) -> None:
    fs = mount_of(path, parse_mountinfo(MOUNTINFO))
    assert (fs.mount_point, fs.fs_type, fs.device) == (mount_point, fs_type, device)


def test_mountinfo_gives_the_device_numbers_and_proc_mounts_parses_too() -> None:
    assert mount_of("/data/x", parse_mountinfo(MOUNTINFO)).dev == "8:16"
    mounts = parse_mounts("/dev/vda / ext4 rw 0 0\n/dev/sdb /srv/a\\040b xfs rw 0 0\n")
    fs = mount_of("/srv/a b/c", mounts)
    assert (fs.mount_point, fs.fs_type, fs.device) == ("/srv/a b", "xfs", "/dev/sdb")


def test_the_real_lookup_finds_the_mount_of_a_real_folder(tmp_path: Path) -> None:
    fs = file_system_of(tmp_path)
    here = os.stat(tmp_path).st_dev
    assert os.stat(fs.mount_point).st_dev == here  # same file system as the folder
    assert str(tmp_path.resolve()).startswith(fs.mount_point)
    assert fs.dev == f"{os.major(here)}:{os.minor(here)}"
    assert fs.fs_type != "unknown" and fs.device


# -- combining rounds and the command -----------------------------------------------------

def test_rounds_combine_each_ratio_as_the_median_of_the_rounds_own() -> None:
    rounds = [BenchResult("x", 100, 1.0, 1.0, 2.0, ratios={"echo": 0.2, "fsync_floor": 2.0}),
              BenchResult("x", 100, 0.5, 3.0, 9.0, ratios={"echo": 0.6, "fsync_floor": 1.0}),
              BenchResult("x", 100, 0.25, 2.0, 4.0, ratios={"echo": 0.3, "fsync_floor": 3.0})]
    combined = _median_of(rounds)
    assert combined.rate == 200.0
    assert combined.ratios == {"echo": 0.3, "fsync_floor": 2.0}
    assert ceiling_for(1) == "fsync_floor" and ceiling_for(2) == "group_commit"


def test_json_has_every_ratio_and_the_file_system_measured(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["bench", "intake", "-n", "50", "--rounds", "1",
                                    "--connections", "1", "--connections", "2",
                                    "--sample", str(SAMPLE), "--dir", str(tmp_path),
                                    "--json"])
    assert out.exit_code == 0, out.output
    figures = json.loads(out.output)
    fs = file_system_of(tmp_path)
    assert figures["dir"] == str(tmp_path.resolve())
    assert figures["file_system"] == {"mount_point": fs.mount_point, "fs_type": fs.fs_type,
                                      "device": fs.device, "dev": fs.dev}
    assert set(figures["connections"]) == {"1", "2"}
    assert figures["connections"]["1"]["ceiling"] == "fsync_floor"
    assert figures["connections"]["2"]["ceiling"] == "group_commit"
    for conns in ("1", "2"):
        run = figures["connections"][conns]
        configs = run["configurations"]
        assert list(configs) == ["bare asyncio echo", "fsync floor", "group-commit ceiling",
                                 "gateway listener, no spool", "spool + ACK",
                                 "intake: check + spool + ACK", "intake, encrypted at rest",
                                 "intake, journal off"]
        for name, figure in configs.items():
            assert set(figure["ratios"]) == set(CEILINGS)
            assert figure["ratio_to_ceiling"] == figure["ratios"][run["ceiling"]]
            assert figure["msg_per_s"] > 0 and 0 < figure["p50_ms"] <= figure["p99_ms"]
            assert figure["rounds"] == 1, name
        for key, name in CEILINGS.items():  # each ceiling is 100 % of itself
            assert configs[name]["ratios"][key] == 1.0
    assert list(tmp_path.iterdir()) == []  # the bench's files are gone


def test_the_text_names_the_disk_and_both_ratios(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["bench", "intake", "-n", "20", "--rounds", "1",
                                    "--connections", "2", "--sample", str(SAMPLE),
                                    "--dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    fs = file_system_of(tmp_path)
    assert f"on {fs.mount_point} ({fs.fs_type} on {fs.device})" in out.output
    intake = next(ln for ln in out.output.splitlines() if "intake: check" in ln)
    assert "of group-commit ceiling" in intake and "of echo" in intake
