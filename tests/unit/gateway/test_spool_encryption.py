"""The spool and its journal encrypted at rest (real files): no PHI in clear anywhere in
them, a wrong or missing key stops the start, rotation and rewrap, and the in-place
migration of a spool written in clear."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from gateway.errors import EncryptionError, SpoolError
from gateway.keys.keyring import DataKey, Keyring, is_encrypted
from gateway.spool import Accepted, Rejected, Spool
from gateway.spool.outbound import OutboundItem
from gateway.spool.sealing import Sealer

NAME, MRN = b"Everyman^Adam", b"MRN-4820017"
K1, K2 = DataKey("k1", os.urandom(32)), DataKey("k2", os.urandom(32))


def message(cid: str) -> Accepted:
    raw = (b"MSH|^~\\&|EPIC|HOSP|GW|HOSP|20260101||ADT^A01|" + cid.encode()
           + b"|P|2.5\rPID|1||" + MRN + b"^^^HOSP||" + NAME + b"\r")
    return Accepted(listener="l", peer="p", sender="EPIC|HOSP", control_id=cid,
                    message_type="ADT^A01", sha256=f"sha-{cid}", raw=raw,
                    ack=b"MSA|AA|" + cid.encode() + b"|" + NAME, event_id=f"ev-{cid}")


def refused() -> Rejected:
    return Rejected(listener="l", peer="p", sender="EPIC|HOSP", control_id="BAD",
                    ack_code="AR", err_code="100", reason="no PID",
                    raw=b"MSH|bad|" + NAME + MRN, ack=b"MSA|AR|BAD")


def result(n: int) -> OutboundItem:
    return OutboundItem(destination="ehr", event_id=f"res-{n}", causation_id=None,
                        message_type="ORU^R01", control_id=f"C{n}", patient_key="p1",
                        resource=b'{"name": "' + NAME + b'"}',
                        message=b"MSH|...|PID|" + MRN)


def spool_at(tmp_path: Path, keyring: Keyring | None) -> Spool:
    return Spool(tmp_path / "spool.db", journal_dir=tmp_path / "journal",
                 segment_bytes=256 << 10, keyring=keyring)


def files_contain(tmp_path: Path, needle: bytes) -> list[str]:
    """Every file of the spool and journal whose raw bytes hold ``needle``."""
    found = []
    for path in [*tmp_path.glob("spool.db*"), *(tmp_path / "journal").iterdir()]:
        if path.is_file() and needle in path.read_bytes():
            found.append(path.name)
    return found


async def fill(spool: Spool, start: int, count: int) -> None:
    await asyncio.gather(*(spool.store(message(f"M{i}")) for i in range(start, start + count)))
    await spool.store(refused())
    await spool.queue_outbound([result(start)])
    await spool.flush()


async def test_no_name_or_identifier_in_clear_in_any_file_and_every_read_opens(
        tmp_path: Path) -> None:
    spool = spool_at(tmp_path, Keyring([K1], "k1"))
    await spool.start()
    try:
        await fill(spool, 0, 20)
        pending = await spool.pending()
        assert [p.raw for p in pending] == [message(f"M{i}").raw for i in range(20)]
        body = await spool.body(pending[0].id)
        assert body is not None and body.ack == message("M0").ack
        dup = await spool.store(message("M3"))  # the duplicate's ACK is opened too
        assert (dup.status, dup.ack) == ("duplicate", message("M3").ack)
        (row,) = await spool.queued_outbound("ehr", 5)
        assert row.message == result(0).message
        assert await spool.outbound_resource(row.id) == result(0).resource
        await spool.mark_outbound_sent([(row.id, 1, "AA", b"MSA|AA|" + MRN)])
        again = await spool.get_outbound(row.id)
        assert again is not None and again.ack == b"MSA|AA|" + MRN
    finally:
        await spool.stop()
    assert files_contain(tmp_path, NAME) == []
    assert files_contain(tmp_path, MRN) == []
    conn = sqlite3.connect(tmp_path / "spool.db")
    raw, ack = conn.execute("SELECT raw, ack FROM messages LIMIT 1").fetchone()
    # Metadata the console filters on stays readable.
    assert conn.execute("SELECT DISTINCT sender, message_type FROM messages").fetchall() == [
        ("EPIC|HOSP", "ADT^A01")]
    conn.close()
    assert is_encrypted(raw) and is_encrypted(ack)


async def test_wrong_or_missing_key_stops_the_start(tmp_path: Path) -> None:
    spool = spool_at(tmp_path, Keyring([K1], "k1"))
    await spool.start()
    await fill(spool, 0, 3)
    await spool.stop()
    other = Keyring([DataKey("k1", os.urandom(32))], "k1")  # same id, other material
    for keyring, says in ((other, "failed authentication"), (Keyring([K2], "k2"), "'k1'"),
                          (None, "no key is configured")):
        with pytest.raises(SpoolError, match=says):
            await spool_at(tmp_path, keyring).start()


async def test_journal_records_are_sealed_and_replayed_with_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.spool import writes

    spool = spool_at(tmp_path, Keyring([K1], "k1"))
    await spool.start()
    monkeypatch.setattr(writes, "index_entries", _refuse)
    await asyncio.gather(*(spool.store(message(f"J{i}")) for i in range(5)))
    # The process dies before SQLite got them: only the journal has them, sealed.
    assert spool.journal is not None and spool._conn is not None
    spool.journal.close()
    spool._conn.close()
    spool._conn = None
    assert spool._writer is not None
    spool._writer.cancel()
    monkeypatch.undo()
    assert files_contain(tmp_path, NAME) == []
    with pytest.raises(EncryptionError):
        await spool_at(tmp_path, Keyring([K2], "k2")).start()
    again = spool_at(tmp_path, Keyring([K1], "k1"))
    await again.start()
    try:
        assert again.replayed == 5
        assert [p.raw for p in await again.pending()] == [message(f"J{i}").raw
                                                          for i in range(5)]
    finally:
        await again.stop()


def _refuse(*_: object, **__: object) -> None:
    raise sqlite3.OperationalError("disk I/O error")


async def test_rotation_keeps_old_records_readable_and_rewrap_moves_them(
        tmp_path: Path) -> None:
    spool = spool_at(tmp_path, Keyring([K1], "k1"))
    await spool.start()
    await fill(spool, 0, 4)
    await spool.stop()
    rotated = Keyring([K1, K2], "k2")
    spool = spool_at(tmp_path, rotated)
    await spool.start()
    try:
        await fill(spool, 10, 4)
        rows = await spool.pending()
        assert [p.raw for p in rows] == [message(f"M{i}").raw for i in (0, 1, 2, 3, 10, 11,
                                                                          12, 13)]
        assert key_ids(tmp_path) == {"k1", "k2"}
        done = await spool.rewrap()
        assert done.sealed == {"messages": 8, "rejected": 2, "outbound": 2}
        assert key_ids(tmp_path) == {"k2"}
        assert search_key_id(tmp_path) == "k2"  # the search index's key moved too
        assert (await spool.rewrap()).total == 0  # nothing left to do
    finally:
        await spool.stop()
    # k1 can go now: everything opens under k2 alone.
    alone = spool_at(tmp_path, Keyring([K2], "k2"))
    await alone.start()
    assert len(await alone.pending()) == 8
    await alone.stop()


def search_key_id(tmp_path: Path) -> str:
    conn = sqlite3.connect(tmp_path / "spool.db")
    try:
        stored = bytes(conn.execute("SELECT key FROM search_state WHERE id = 1").fetchone()[0])
        return Keyring([K1, K2], "k2").key_id_of(stored)
    finally:
        conn.close()


def key_ids(tmp_path: Path) -> set[str]:
    ring = Keyring([K1, K2], "k2")
    conn = sqlite3.connect(tmp_path / "spool.db")
    try:
        return {ring.key_id_of(bytes(r[0])) for r in conn.execute(
            "SELECT raw FROM messages UNION ALL SELECT ack FROM messages")}
    finally:
        conn.close()


async def test_a_clear_spool_is_migrated_in_place(tmp_path: Path) -> None:
    clear = spool_at(tmp_path, None)
    await clear.start()
    await fill(clear, 0, 6)
    await clear.stop()
    assert files_contain(tmp_path, NAME)  # the starting point: PHI in clear
    spool = spool_at(tmp_path, Keyring([K1], "k1"))
    await spool.start()  # clear rows are read as they are; the journal starts afresh
    try:
        await fill(spool, 10, 2)
        assert len(await spool.pending()) == 8
        done = await spool.rewrap()
        assert done.sealed["messages"] == 12 and done.current == 4 + 2 + 2
    finally:
        await spool.stop()
    assert files_contain(tmp_path, NAME) == []
    assert files_contain(tmp_path, MRN) == []


async def test_a_reloaded_keyring_seals_new_rows_and_old_ones_still_open(
        tmp_path: Path) -> None:
    spool = spool_at(tmp_path, Keyring([K1], "k1"))
    await spool.start()
    try:
        await fill(spool, 0, 2)
        with pytest.raises(EncryptionError, match="'k1' is missing"):
            spool.sealer.replace(Keyring([K2], "k2"))
        with pytest.raises(EncryptionError, match="'k1' has other material"):
            spool.sealer.replace(Keyring([DataKey("k1", os.urandom(32))], "k1"))
        assert key_ids(tmp_path) == {"k1"}  # refused reloads changed nothing
        spool.sealer.replace(Keyring([K2, K1], "k2"))  # what `keys rotate` + SIGHUP give
        await fill(spool, 10, 2)
        rows = await spool.pending()  # every row opens, whichever key sealed it
        assert [p.raw for p in rows] == [message(f"M{i}").raw for i in (0, 1, 10, 11)]
    finally:
        await spool.stop()
    assert key_ids(tmp_path) == {"k1", "k2"}
    conn = sqlite3.connect(tmp_path / "spool.db")
    try:
        newest = bytes(conn.execute("SELECT raw FROM messages ORDER BY id DESC").fetchone()[0])
    finally:
        conn.close()
    assert Keyring([K1, K2], "k2").key_id_of(newest) == "k2"


def test_a_spool_started_without_encryption_is_not_turned_on_by_a_reload() -> None:
    sealer = Sealer(None)
    with pytest.raises(EncryptionError, match="restart it to turn encryption on"):
        sealer.replace(Keyring([K1], "k1"))
    assert sealer.keyring is None
