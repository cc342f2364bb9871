"""The spool's search index on real SQLite files: terms that reveal nothing in clear (with
encryption on), the indexer catching up after a restart, pruning taking terms along, the
free text scan's cap, and searches combined with the listing's filter."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.keys.keyring import DataKey, Keyring, is_encrypted
from gateway.spool import Accepted, MessageFilter, MessageInfo, PublishedMark, Spool, search
from gateway.spool.search import SearchQuery

KEYRING = Keyring([DataKey("k1", os.urandom(32))], "k1")
MRN = "MRN-4820017"


def message(n: int, mrn: str = MRN, family: str = "Everyman", sender: str = "EPIC|HOSP",
            order: str = "") -> Accepted:
    raw = (f"MSH|^~\\&|{sender.replace('|', '|')}|GW|HOSP|20260101||ORU^R01|C{n}|P|2.5\r"
           f"PID|1||{mrn}^^^HOSP||{family}^Adam\r"
           f"OBR|1|{order}||CBC\rOBX|1|ST|X||note {n} glucose high\r").encode()
    return Accepted(listener="l", peer="p", sender=sender, control_id=f"C{n}",
                    message_type="ORU^R01", sha256=f"sha-{n}", raw=raw, ack=b"MSA|AA",
                    event_id=f"ev-{n}")


def ids(rows: Sequence[MessageInfo]) -> list[int]:
    return [r.id for r in rows]


async def test_with_encryption_no_identifier_or_name_is_in_clear_and_search_finds_it(
        tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", keyring=KEYRING)
    await spool.start()
    try:
        stored = [await spool.store(message(n, mrn=f"{MRN}{n % 3}")) for n in range(30)]
        await spool.search.catch_up()
        page = await spool.search.find(SearchQuery("identifier", f"{MRN}1"))
        assert ids(page.rows) == [o.row_id for o in stored if (o.row_id - 1) % 3 == 1][::-1]
        named = await spool.search.find(SearchQuery("name", "every ad"))
        assert len(named.rows) == 30
    finally:
        await spool.stop()
    for path in tmp_path.glob("spool.db*"):  # noqa: ASYNC240 - the spool is closed
        data = path.read_bytes()
        for needle in (MRN.encode(), b"Everyman", b"EVERYMAN", b"everyman", b"every"):
            assert needle not in data, (path.name, needle)
    conn = sqlite3.connect(tmp_path / "spool.db")
    assert is_encrypted(conn.execute("SELECT key FROM search_state").fetchone()[0])


async def test_the_indexer_catches_up_after_a_restart_and_follows_new_rows(
        tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    first = Spool(path)
    await first.start()
    for n in range(600):  # more than one chunk, none indexed: no indexer running
        await first.store(message(n, mrn="LATE" if n == 5 else MRN))
    await first.stop()

    second = Spool(path)
    await second.start()
    second.search.start()
    try:
        deadline = time.monotonic() + 15
        while await second.search.behind() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert await second.search.behind() == 0
        assert ids((await second.search.find(SearchQuery("identifier", "late"))).rows) == [6]
        fresh = await second.store(message(999, mrn="FRESH"))
        while not (await second.search.find(SearchQuery("identifier", "FRESH"))).rows:
            assert time.monotonic() < deadline, "the indexer did not pick up a new row"
            await asyncio.sleep(0.05)
        assert ids((await second.search.find(SearchQuery("identifier", "FRESH"))).rows) \
            == [fresh.row_id]
    finally:
        await second.stop()


async def test_pruning_deletes_the_terms_of_pruned_messages(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    await spool.start()
    try:
        old = await spool.store(message(1, mrn="OLD"))
        kept = await spool.store(message(2, mrn="KEPT"))
        await spool.search.catch_up()
        await spool.mark_published([PublishedMark(old.row_id, "t", 0, 1)])
        assert await spool.prune(published_before=time.time() + 10, rejected_before=0) == 1
        conn = sqlite3.connect(tmp_path / "spool.db")
        left = {r[0] for r in conn.execute("SELECT DISTINCT message_id FROM search_terms")}
        assert left == {kept.row_id}
        assert (await spool.search.find(SearchQuery("identifier", "OLD"))).rows == []
    finally:
        await spool.stop()


async def test_free_text_reads_at_most_the_cap_and_says_how_far_it_got(
        tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", keyring=KEYRING)
    await spool.start()
    try:
        for n in range(40):
            await spool.store(message(n))
        mp = pytest.MonkeyPatch()
        mp.setattr(search, "SCAN_CAP", 10)
        try:
            query = SearchQuery("text", "GLUCOSE HIGH")
            first = await spool.search.find(query, limit=50)
            assert (first.scanned, first.in_window) == (10, 40)
            assert ids(first.rows) == list(range(40, 30, -1))
            assert first.next_before == 31
            second = await spool.search.find(query, limit=50, before_id=first.next_before)
            assert ids(second.rows) == list(range(30, 20, -1))
            only = await spool.search.find(SearchQuery("text", "note 7 glucose"))
            assert ids(only.rows) == []  # row 8 (note 7) is beyond the first 10 read
            assert await spool.search.ids(query, 5) == ([40, 39, 38, 37, 36], True)
        finally:
            mp.undo()
        everything = await spool.search.find(SearchQuery("text", "note 7 glucose"))
        assert ids(everything.rows) == [8] and everything.next_before is None
    finally:
        await spool.stop()


async def test_search_combines_with_sender_and_time_window_and_pages(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    await spool.start()
    try:
        for n in range(10):
            await spool.store(message(n, order="ACC-1",
                                      sender="LAB|HOSP" if n % 2 else "EPIC|HOSP"))
        await spool.search.catch_up()
        lab = SearchQuery("order", "acc-1", MessageFilter(sender="LAB"))
        assert ids((await spool.search.find(lab)).rows) == [10, 8, 6, 4, 2]
        page = await spool.search.find(lab, limit=2)
        assert ids(page.rows) == [10, 8] and page.next_before == 8
        assert ids((await spool.search.find(lab, limit=2, before_id=8)).rows) == [6, 4]
        assert await spool.search.ids(lab, 3) == ([10, 8, 6], True)
        assert await spool.search.count(lab) == 5
        none = SearchQuery("order", "acc-1", MessageFilter(since=time.time() + 60))
        assert (await spool.search.find(none)).rows == []
        control = SearchQuery("control", "C3")
        assert ids((await spool.search.find(control)).rows) == [4]
    finally:
        await spool.stop()


async def test_the_search_key_follows_a_key_rotation(tmp_path: Path) -> None:
    old, new = DataKey("old", os.urandom(32)), DataKey("new", os.urandom(32))
    path = tmp_path / "spool.db"
    for keyring in (Keyring([old], "old"), Keyring([old, new], "new"), Keyring([new], "new")):
        spool = Spool(path, keyring=keyring)
        await spool.start()
        try:
            if keyring.current_key_id == "old":
                await spool.store(message(1, mrn="ROTATED"))
                await spool.search.catch_up()
            else:
                await spool.search.key()  # as the indexer does on start
                await spool.rewrap()  # hl7gw keys rewrap: the messages, before retiring
            if len(keyring.key_ids) == 1:
                found = await spool.search.find(SearchQuery("identifier", "rotated"))
                assert ids(found.rows) == [1]
        finally:
            await spool.stop()
        stored = sqlite3.connect(path).execute("SELECT key FROM search_state").fetchone()[0]
        assert keyring.key_id_of(stored) == keyring.current_key_id
