"""Kafka's default partitioning (murmur2 of the key, as the Java client), remembered per key.

aiokafka computes murmur2 in pure Python on every record: about 5 µs for a patient key, a
few percent of the gateway's event loop at 2,000 records a second. A patient's messages
come in runs (admission, transfers, results), so the last keys' hashes are kept. The
partition chosen is the Java client's, so records keyed by one patient land where any
other producer of the topic would put them.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

from aiokafka.partitioner import murmur2

KEYS_REMEMBERED = 65_536  # ~100 bytes each: a few MiB at most


@functools.lru_cache(maxsize=KEYS_REMEMBERED)
def key_hash(key: bytes) -> int:
    """murmur2 of ``key``, positive, as the Java client's default partitioner uses it."""
    return int(murmur2(key)) & 0x7FFFFFFF


class CachedPartitioner:
    """aiokafka's ``DefaultPartitioner``, with the key's hash remembered."""

    def __call__(self, key: bytes | None, all_partitions: Sequence[int],
                 available: Sequence[int]) -> int:
        if key is None:  # unkeyed: any live partition, as the default does
            return random.choice(available or all_partitions)
        return all_partitions[key_hash(key) % len(all_partitions)]
