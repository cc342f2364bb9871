"""The producer's partitioner: Kafka's default partitions (the Java client's murmur2)."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from connectors.kafka.partitioner import CachedPartitioner, key_hash


def test_keys_land_where_the_default_partitioner_puts_them() -> None:
    rng = random.Random(7)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
            for _ in range(2_000)]
    cached, default = CachedPartitioner(), DefaultPartitioner()
    for partitions in ([0], [0, 1, 2], list(range(12)), [3, 5, 8]):
        for key in keys + keys:  # the second time from the remembered hashes
            assert cached(key, partitions, partitions) == default(key, partitions, partitions)


def test_the_hash_is_the_java_clients() -> None:
    # Kafka's own test vectors (UtilsTest.testMurmur2), masked positive as the Java
    # client's default partitioner does (Utils.toPositive).
    assert key_hash(b"21") == -973932308 & 0x7FFFFFFF
    assert key_hash(b"foobar") == -790332482 & 0x7FFFFFFF


def test_unkeyed_records_go_to_a_live_partition() -> None:
    cached = CachedPartitioner()
    assert {cached(None, [0, 1, 2], [2]) for _ in range(50)} == {2}
    assert {cached(None, [0, 1, 2], []) for _ in range(200)} == {0, 1, 2}
