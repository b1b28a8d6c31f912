"""Which partition a customer lives in: the one rule that the worker, replay and `send` share."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a message keyed by `customer_id`."""
    if partitions == 1:
        return 0
    return (murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions
