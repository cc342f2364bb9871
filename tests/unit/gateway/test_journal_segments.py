"""The intake journal's segment files (gateway/spool/journal.py), on real files.

What a crash or a power cut can leave (a torn or truncated tail, garbage after the end)
is simulated by editing the segment bytes; opening must then give back exactly the records
whose append completed, report what it cut, and go on appending after them.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from gateway.errors import SpoolError
from gateway.spool.journal import Journal, encode_record

SPOOL_ID = 7
SEGMENT = 8192


def journal(folder: Path, *, spool_id: int = SPOOL_ID, after: int = 0
            ) -> tuple[Journal, list[tuple[int, bytes]]]:
    j = Journal(folder, spool_id=spool_id, segment_bytes=SEGMENT)
    return j, j.open(after)


def payload(i: int) -> bytes:
    return f"record {i} ".encode() * (1 + i % 7)


def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("seg-*.jnl"))


def test_records_come_back_in_order_after_the_position_given(tmp_path: Path) -> None:
    j, found = journal(tmp_path / "j")
    assert found == []
    assert j.append([payload(1), payload(2)]) == 2
    assert j.append([payload(3)]) == 3
    assert j.fsyncs == 2  # one fdatasync per append, however many records it holds
    j.close()
    j, found = journal(tmp_path / "j", after=1)
    assert found == [(2, payload(2)), (3, payload(3))]
    assert j.append([payload(4)]) == 4  # the sequence goes on
    j.close()
    j, found = journal(tmp_path / "j")
    assert [seq for seq, _ in found] == [1, 2, 3, 4] and j.cuts == []
    j.close()


def test_segments_are_preallocated_and_rotate_with_the_sequence_unbroken(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    j, _ = journal(folder)
    for i in range(1, 301):
        j.append([payload(i)])
    assert len(segments(folder)) >= 3
    assert all(p.stat().st_size == SEGMENT for p in segments(folder))
    j.close()
    j, found = journal(folder)
    assert [seq for seq, _ in found] == list(range(1, 301))
    assert all(data == payload(seq) for seq, data in found)
    assert list(j) == found
    j.close()


def test_recycled_segments_become_the_spare_and_old_records_never_return(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    j, _ = journal(folder)
    for i in range(1, 301):
        j.append([payload(i)])
        if i % 20 == 0:
            j.recycle(i)  # SQLite holds everything so far, durably
            j.prepare_spare()
    names = {p.name for p in folder.iterdir()} - {"LOCK"}
    assert len([n for n in names if n.startswith("seg-")]) == 1
    assert "spare.jnl" in names
    j.close()
    j, found = journal(folder, after=300)
    assert found == [] and j.cuts == []
    j.append([b"after restart"])
    j.close()
    j, found = journal(folder, after=300)
    assert found == [(301, b"after restart")]
    j.close()


def test_a_torn_last_record_is_cut_reported_and_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    j, _ = journal(folder)
    for i in range(1, 6):
        j.append([payload(i)])
    end = j.segments[-1].end
    j.close()
    (seg,) = segments(folder)
    size = len(encode_record(5, payload(5)))
    with seg.open("r+b") as f:  # flip a byte inside record 5's payload
        f.seek(end - 3)
        byte = f.read(1)
        f.seek(end - 3)
        f.write(bytes([byte[0] ^ 0xFF]))
    j, found = journal(folder)
    assert [seq for seq, _ in found] == [1, 2, 3, 4]
    (cut,) = j.cuts
    assert (cut.offset, cut.reason) == (end - size, "checksum mismatch")
    assert j.append([b"five again"]) == 5
    j.close()
    j, found = journal(folder)
    assert found[-1] == (5, b"five again") and j.cuts == []
    j.close()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "zeros"])
def test_power_loss_at_any_offset_keeps_every_completed_append(tmp_path: Path,
                                                               damage: str) -> None:
    """A cut at a random offset of the log: the records wholly before it come back,
    nothing after it, and the journal takes appends again; 40 random offsets each."""
    source = tmp_path / "source"
    j, _ = journal(source)
    ends: list[tuple[int, str, int]] = []  # (seq, segment name, end offset) per append
    for i in range(1, 121):
        j.append([payload(i)])
        ends.append((i, j.segments[-1].path.name, j.segments[-1].end))
    j.close()
    rng = random.Random(f"journal-{damage}")
    for trial in range(40):
        folder = tmp_path / f"trial{trial}"
        shutil.copytree(source, folder)
        seg = rng.choice(segments(folder))
        offset = rng.randrange(32, SEGMENT)
        with seg.open("r+b") as f:
            if damage == "truncate":
                f.truncate(offset)
            else:
                f.seek(offset)
                f.write(os.urandom(64) if damage == "garbage" else bytes(64))
        # Later segments than the damaged one did not exist yet at that moment.
        for later in segments(folder):
            if later.name > seg.name:
                later.unlink()
        survivors = [seq for seq, name, end in ends
                     if name < seg.name or (name == seg.name and end <= offset)]
        j, found = journal(folder)
        assert [seq for seq, _ in found] == survivors, (trial, seg.name, offset)
        assert all(data == payload(seq) for seq, data in found)
        next_seq = (survivors[-1] if survivors else
                    int(seg.name[4:24]) - 1) + 1
        assert j.append([b"resumed"]) == next_seq
        j.close()
        j, again = journal(folder)
        assert again[-1] == (next_seq, b"resumed") and j.cuts == []
        j.close()


def test_one_process_at_a_time(tmp_path: Path) -> None:
    first, _ = journal(tmp_path / "j")
    with pytest.raises(SpoolError, match="in use by another hl7gw process"):
        journal(tmp_path / "j")
    first.close()
    second, _ = journal(tmp_path / "j")  # released on close
    second.close()


def test_a_journal_of_another_spool_is_refused(tmp_path: Path) -> None:
    j, _ = journal(tmp_path / "j")
    j.append([b"belongs to spool 7"])
    j.close()
    with pytest.raises(SpoolError, match="belongs to another spool file"):
        journal(tmp_path / "j", spool_id=8)


def test_a_batch_bigger_than_a_segment_is_split_and_one_record_too_big_refused(
        tmp_path: Path) -> None:
    j, _ = journal(tmp_path / "j")
    assert j.append([bytes(3000)] * 6) == 6  # 18 KB over 8 KB segments
    with pytest.raises(SpoolError, match="does not fit a journal segment"):
        j.append([bytes(SEGMENT)])
    j.close()
    j, found = journal(tmp_path / "j")
    assert [seq for seq, _ in found] == [1, 2, 3, 4, 5, 6]
    j.close()


def test_records_whose_sync_failed_are_gone_after_the_next_append(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j, _ = journal(tmp_path / "j")
    assert j.append([payload(1)]) == 1
    with monkeypatch.context() as patched:
        def eio(fd: int) -> None:
            raise OSError(5, "Input/output error")

        patched.setattr(os, "fdatasync", eio)
        with pytest.raises(SpoolError, match="write failed"):
            j.append([payload(2), payload(3)])  # refused: never acknowledged
    # The next append takes their place and their numbers; being shorter, it must not
    # leave the refused record 3 behind it for a restart to replay.
    assert j.append([payload(9)]) == 2
    j.close()
    j, found = journal(tmp_path / "j")
    assert found == [(1, payload(1)), (2, payload(9))] and j.cuts == []
    j.close()
