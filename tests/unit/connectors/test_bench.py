"""Pure parts of the bridge benchmark: the events it sends and its order check."""

from __future__ import annotations

from connectors.bench import _in_order, bench_events


def test_bench_events_spread_over_10_to_50_keys() -> None:
    assert len({e.key for e in bench_events(100)}) == 10
    assert len({e.key for e in bench_events(1000)}) == 25
    assert len({e.key for e in bench_events(10000)}) == 50
    assert len({e.id for e in bench_events(500)}) == 500


def test_in_order_is_per_key() -> None:
    events = bench_events(40)  # 10 keys, 4 events each
    arrivals = [(e.id, float(n)) for n, e in enumerate(events)]
    assert _in_order(events, arrivals)
    key_of = {e.id: e.key or b"" for e in events}
    grouped = sorted(arrivals, key=lambda a: key_of[a[0]], reverse=True)  # stable per key
    assert grouped != arrivals and _in_order(events, grouped)  # order across keys is free
    swapped = list(arrivals)
    swapped[0], swapped[10] = swapped[10], swapped[0]  # same key (n % 10 == 0), reordered
    assert not _in_order(events, swapped)
    assert not _in_order(events, arrivals[:-1])  # one missing
