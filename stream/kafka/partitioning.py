"""Which partition a customer lives in: the one rule that the worker, replay and `send` share."""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


# murmur2 is pure Python here (about 5 µs a key), asked for every event, and a customer has
# several: the recent answers are kept (a quarter million ids, some 40 MB at most)
@lru_cache(maxsize=1 << 18)
def partition_for(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a message keyed by `customer_id`."""
    if partitions == 1:
        return 0
    return (murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions
