"""``hl7gw bench search``: searching a big spool, and what the search indexer costs.

Builds a spool of varied, realistic messages (ADT and ORU from many senders, about five
messages per patient, received over 30 days; sealed at rest like an encrypted gateway's)
with batched SQL inserts, indexes it with the indexer's own functions (timing the reading
and hashing apart from the writing), then runs each query kind several times through the
spool's API while a ticker task on the event loop measures how late it wakes: the worst
lag is what a search costs intake's ACKs. Last, it stores messages through the spool's
write path with the indexer stopped and then running, so the indexer's effect on intake
is a measured ratio, not a promise.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.keys.keyring import DataKey, Keyring
from gateway.spool import Accepted, MessageFilter, Spool
from gateway.spool import search as sql
from gateway.spool.search import INDEX_CHUNK, SearchQuery

FAMILIES = ("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez "
            "Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin "
            "Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker "
            "Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson "
            "Baker Hall Rivera Campbell Mitchell Carter Roberts Nakamura Okafor Novak "
            "Kowalski Schmidt Muller Rossi Dubois Silva Santos Kim Park Chen Wang Singh").split()
GIVENS = ("James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William "
          "Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Yuki Amara Eve "
          "Adam Ingrid Mateo Lucia Noah Olivia Liam Emma Aiden Sofia Omar Fatima").split()
SENDERS = (("EPICADT", "GOODHEALTH"), ("SUNLAB", "RIVERSIDE"), ("CERNER", "STMARY"),
           ("MEDITECH", "NORTHVALLEY"), ("LABCORP", "REFLAB"))
WORDS = "glucose sodium potassium creatinine hemoglobin platelet culture negative".split()
DAYS = 30


@dataclass(frozen=True)
class Row:
    """One generated message and what a search for it would use."""

    received_at: float
    sender: str
    control_id: str
    message_type: str
    raw: bytes
    mrn: str
    family: str
    given: str
    accession: str


def make_row(n: int, now: float, rng: random.Random, total: int = 10**7) -> Row:
    """Message ``n``: about five per patient, ADT or ORU, from one of a few senders."""
    patient = n // 5 + rng.randrange(3)
    family = FAMILIES[patient % len(FAMILIES)] + ("" if patient % 7 else "-" + FAMILIES[
        (patient // 7) % len(FAMILIES)])
    given = GIVENS[(patient * 7) % len(GIVENS)]
    mrn, accession = f"MRN{patient:08d}", f"ACC{n:09d}"
    app, fac = SENDERS[n % len(SENDERS)]
    control = f"{app[:3]}{n:010d}"
    received = now - DAYS * 86400 * (1 - n / total) - rng.random()
    oru = n % 3 != 0
    kind = "ORU^R01" if oru else "ADT^A08"
    lines = [f"MSH|^~\\&|{app}|{fac}|HL7GW|CLOUD|20240115103000||{kind}|{control}|P|2.5.1",
             f"PID|1||{mrn}^^^{fac}^MR~{patient * 31 % 999999999:09d}^^^SSA^SS||"
             f"{family}^{given}^{GIVENS[patient % 5]}||19{60 + patient % 40}0101|"
             f"{'MF'[patient % 2]}|||{patient % 9999} Main St^^Ann Arbor^MI^48104"]
    if oru:
        lines += [f"ORC|RE|PL{n:09d}|{accession}",
                  f"OBR|1|PL{n:09d}|{accession}|CBC^Blood count^L|||20240115",
                  *(f"OBX|{i}|NM|{w}^{w}^L||{rng.randrange(10, 300)}|mg/dL|||||F"
                    for i, w in enumerate(rng.sample(WORDS, 4), 1))]
    else:
        lines.append("PV1|1|I|4E^401^B^GOODHEALTH")
    return Row(received, f"{app}|{fac}", control, kind, "\r".join(lines).encode(), mrn,
               family, given, accession)


def build(path: Path, rows: int, keyring: Keyring, seed: int = 7) -> dict[str, list[Row]]:
    """Insert ``rows`` messages (sealed) in batches; returns samples to search for."""
    from gateway.spool.sealing import Sealer

    sealer, rng, now = Sealer(keyring), random.Random(seed), time.time()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    samples: list[Row] = []
    batch: list[tuple[Any, ...]] = []
    for n in range(1, rows + 1):
        row = make_row(n, now, rng, rows)
        if n % max(1, rows // 200 + 1) == 1:  # every ORU/ADT and sender kind
            samples.append(row)
        batch.append((n, row.received_at, "bench", "127.0.0.1:1", row.sender, row.control_id,
                      row.message_type, f"sha{n}", sealer.seal(row.raw, f"messages:{n}:raw"),
                      sealer.seal(b"MSA|AA", f"messages:{n}:ack"), f"ev{n}", "published"))
        if len(batch) == 20_000 or n == rows:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO messages (id, received_at, listener, peer, sender, control_id,"
                " message_type, sha256, raw, ack, event_id, status)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            conn.execute("COMMIT")
            batch.clear()
    conn.close()
    return {"samples": samples}


def index_all(path: Path, keyring: Keyring) -> dict[str, float]:
    """Index every row with the indexer's functions; seconds reading+hashing vs writing."""
    from gateway.spool.sealing import Sealer

    sealer = Sealer(keyring)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    key = sql.search_key(conn, sealer)
    read_s = write_s = 0.0
    upto = sql.indexed_upto(conn)
    terms = 0
    while True:
        t0 = time.perf_counter()
        new, pairs = sql.read_chunk(conn, sealer, key, upto, 2048)
        t1 = time.perf_counter()
        if new == upto:
            break
        sql.write_terms(conn, new, pairs)
        write_s += time.perf_counter() - t1
        read_s += t1 - t0
        terms += len(pairs)
        upto = new
    conn.close()
    return {"read_hash_s": read_s, "write_s": write_s, "terms": terms, "rows": upto}


class Ticker:
    """A task that sleeps 1 ms at a time and keeps the worst lateness: event-loop stalls."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - before - 0.001)

    def __enter__(self) -> Ticker:
        self._task = asyncio.ensure_future(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def queries(samples: list[Row], now: float) -> dict[str, list[SearchQuery]]:
    """Several queries per kind, from rows known to be in the spool."""
    day = MessageFilter(since=now - 86400 * 2, until=now - 86400)
    pick = samples[:: max(1, len(samples) // 10)][:10]
    return {
        "identifier": [SearchQuery("identifier", r.mrn) for r in pick],
        "name": [SearchQuery("name", f"{r.family[:4]} {r.given[:3]}") for r in pick],
        "control": [SearchQuery("control", r.control_id) for r in pick],
        "order": [SearchQuery("order", r.accession) for r in pick if r.message_type
                  == "ORU^R01"] or [SearchQuery("order", "ACC000000003")],
        "text (one day window)": [SearchQuery("text", w, day) for w in WORDS[:5]],
        "text, no hit (one day)": [SearchQuery("text", f"absent{i}", day) for i in range(3)],
        "text, no hit (no window)": [SearchQuery("text", f"absent{i}") for i in range(3)],
        "identifier + sender + day": [SearchQuery("identifier", r.mrn, MessageFilter(
            sender=r.sender.split("|")[0], since=r.received_at - 86400,
            until=r.received_at + 86400)) for r in pick],
    }


async def measure(path: Path, keyring: Keyring, samples: list[Row],
                  intake_rows: int) -> dict[str, Any]:
    """Query times and loop stalls per kind; intake with the indexer off and on."""
    spool = Spool(path, keyring=keyring)
    await spool.start()
    figures: dict[str, Any] = {}
    try:
        await spool.search.key()
        for kind, qs in queries(samples, time.time()).items():
            times: list[float] = []
            found: list[int] = []
            scanned: tuple[int | None, int | None] = (None, None)
            with Ticker() as ticker:
                for q in qs:
                    t0 = time.perf_counter()
                    page = await spool.search.find(q, limit=50)
                    times.append(time.perf_counter() - t0)
                    found.append(len(page.rows))
                    scanned = (page.scanned, page.in_window)
            figures[kind] = {"p50_ms": statistics.median(times) * 1000,
                             "max_ms": max(times) * 1000, "queries": len(qs),
                             "rows_min": min(found), "rows_max": max(found),
                             "worst_loop_stall_ms": ticker.worst * 1000}
            if scanned[0] is not None:  # text: rows read of the rows in the window
                figures[kind] |= {"scanned": scanned[0], "in_window": scanned[1]}
        figures["intake"] = await _intake(spool, intake_rows)
    finally:
        await spool.stop()
    return figures


async def _intake(spool: Spool, count: int) -> dict[str, float]:
    """Messages/s stored by 8 concurrent senders, indexer stopped, then running."""
    rng, now = random.Random(11), time.time()
    start = 10**7

    async def store(first: int) -> float:
        rows = [make_row(first + i, now, rng) for i in range(count)]
        t0 = time.perf_counter()
        for wave in range(0, count, 8):
            await asyncio.gather(*(spool.store(Accepted(
                listener="bench", peer="p", sender=r.sender, control_id=r.control_id,
                message_type=r.message_type, sha256=r.control_id, raw=r.raw, ack=b"MSA|AA",
                event_id=r.control_id)) for r in rows[wave:wave + 8]))
        return count / (time.perf_counter() - t0)

    offs: list[float] = []
    ons: list[float] = []
    lags: list[float] = []
    chunked: list[float] = []
    for rnd in range(3):  # alternating rounds, medians: a shared machine drifts
        await spool.search.catch_up()
        offs.append(await store(start + 2 * rnd * count))
        t0 = time.perf_counter()
        await spool.search.catch_up()  # the background indexer's own chunks, idle
        chunked.append((time.perf_counter() - t0) / count)
        spool.search.start()
        ons.append(await store(start + (2 * rnd + 1) * count))
        t0 = time.perf_counter()
        while await spool.search.behind():  # noqa: ASYNC110 - polling the spool
            await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - t0)
        await spool.search.stop()
    off, on = statistics.median(offs), statistics.median(ons)
    return {"msgs_per_s_indexer_off": off, "msgs_per_s_indexer_on": on,
            "ratio_on_off": on / off, "index_caught_up_after_s": statistics.median(lags),
            "messages": count, "rounds": 3,
            "indexer_us_per_message": statistics.median(chunked) * 1e6}


def run(rows: int, folder: Path, intake_rows: int = 10_000) -> dict[str, Any]:
    """The whole bench in ``folder`` (its spool file removed after)."""
    path = folder / "search-bench.db"
    for old in folder.glob("search-bench.db*"):
        old.unlink()
    keyring = Keyring([DataKey("bench", os.urandom(32))], "bench")
    try:
        asyncio.run(_create(path, keyring))
        t0 = time.perf_counter()
        samples = build(path, rows, keyring)["samples"]
        built = time.perf_counter() - t0
        index = index_all(path, keyring)
        figures = asyncio.run(measure(path, keyring, samples, intake_rows))
        size = sum(p.stat().st_size for p in folder.glob("search-bench.db*"))
    finally:
        for old in folder.glob("search-bench.db*"):
            old.unlink()
    per_row = (index["read_hash_s"] + index["write_s"]) / max(1, index["rows"])
    return {"rows": rows, "build_s": built, "spool_mb": size / 1e6,
            "index": {**index, "us_per_message": per_row * 1e6,
                      "read_hash_us_per_message": index["read_hash_s"] / rows * 1e6,
                      "write_us_per_message": index["write_s"] / rows * 1e6,
                      "terms_per_message": index["terms"] / rows},
            "queries": {k: v for k, v in figures.items() if k != "intake"},
            "intake": figures["intake"]}


async def _create(path: Path, keyring: Keyring) -> None:
    spool = Spool(path, keyring=keyring)
    await spool.start()
    await spool.search.key()  # sealed now, as a running gateway leaves it
    await spool.stop()


def lines(figures: dict[str, Any]) -> list[str]:
    """The figures as text."""
    idx, intake = figures["index"], figures["intake"]
    out = [f"search over {figures['rows']:,} messages (sealed at rest); spool "
           f"{figures['spool_mb']:,.0f} MB, built in {figures['build_s']:.0f} s",
           f"  indexer: {idx['us_per_message']:.0f} us/message "
           f"({idx['read_hash_us_per_message']:.0f} read+parse+hash, "
           f"{idx['write_us_per_message']:.0f} write), "
           f"{idx['terms_per_message']:.1f} terms/message",
           f"  {'kind':28s} {'p50 ms':>8s} {'max ms':>8s} {'rows':>9s} {'loop stall ms':>14s}"]
    for kind, f in figures["queries"].items():
        read = f"  scanned {f['scanned']:,} of {f['in_window']:,}" if "scanned" in f else ""
        out.append(f"  {kind:28s} {f['p50_ms']:8.1f} {f['max_ms']:8.1f} "
                   f"{f['rows_min']:>4d}-{f['rows_max']:<4d} {f['worst_loop_stall_ms']:14.1f}"
                   + read)
    out.extend([f"  intake, 8 senders, {intake['messages']} messages (median of 3): "
               f"{intake['msgs_per_s_indexer_off']:,.0f} msg/s indexer off, "
               f"{intake['msgs_per_s_indexer_on']:,.0f} on ({intake['ratio_on_off']:.0%}); "
               f"index caught up {intake['index_caught_up_after_s']:.2f} s after",
               f"  indexer as it runs in the gateway ({INDEX_CHUNK} per chunk, on a spool "
               f"this size): {intake['indexer_us_per_message']:.0f} us/message"])
    return out
