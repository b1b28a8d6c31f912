"""The worker's messages handed to aiokafka a batch at a time, not a message at a time.

aiokafka's `send` costs far more than the bytes it queues: a coroutine, the partitioner, a
future per message, and on the ack a result and a callback per message. An agent that only
iterates the orders topic and produces three messages an event (as many as the worker
sends) ran at 2,205 events/s through `send` and at 4,550 through aiokafka's batch API,
against 5,929 iterating alone (bench/worker_bench.py). So the worker fills one batch per
topic partition and hands it over whole: when it is full, every `linger` seconds, and
before every commit (the commit then waits for its ack, like any message's).

A partition's messages keep their order: one batch of a partition is open at a time, and
batches are handed over in the order they were filled, under one lock shared by every
caller (the agent, the tick timer, the commit). A batch is closed before it is handed over,
so no other message can join it and aiokafka sends it without lingering again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from ..kafka.partitioning import partition_for
from .runtime import Output
from .send_buffer import stop_before_commit

# how long a message waits, at most, for its batch to fill before it is handed over
LINGER_SECONDS = 0.020


class _Open:
    """A batch being filled for one topic partition."""

    __slots__ = ("builder", "table")

    def __init__(self, builder: Any, table: str | None) -> None:
        self.builder = builder
        self.table = table  # set when the batch holds records of this table's changelog


class Batches:
    def __init__(
        self,
        producer: Callable[[], Any],
        confirm_before_commit: Callable[[str, asyncio.Future[Any]], None],
        persisted: Callable[[str, int, asyncio.Future[Any]], None],
    ) -> None:
        """`producer` gives aiokafka's producer; each batch handed over goes to
        `confirm_before_commit`; for a batch of a table's changelog, `persisted(table, last,
        ack)` runs on its ack, `last` being the place of its last record in the batch."""
        self._producer = producer
        self._confirm = confirm_before_commit
        self._persisted = persisted
        self._open: dict[tuple[str, int], _Open] = {}
        self._lock = asyncio.Lock()

    async def send(self, outputs: Iterable[Output]) -> None:
        """Add the outputs, in order, to their partitions' batches; hand over those that fill."""
        async with self._lock:
            for output in outputs:
                await self._add(output)

    async def hand_over_all(self) -> None:
        """Hand over every batch not empty: on the linger timer, and before each commit."""
        async with self._lock:
            for slot in list(self._open):
                await self._hand_over(slot)

    async def _add(self, output: Output) -> None:
        topic, key, value, partition, table = output
        if partition is None:
            partition = await self._keyed_partition(topic, key)
        slot = (topic, partition)
        batch = self._open.get(slot)
        if batch is None:
            batch = self._open[slot] = _Open(self._producer().create_batch(), table)
        elif batch.builder.append(key=key, value=value, timestamp=None) is not None:
            return
        else:  # full: it goes, and the message starts the next one
            await self._hand_over(slot)
            batch = self._open[slot] = _Open(self._producer().create_batch(), table)
        # an empty batch takes any message (one larger than a batch goes alone; Kafka judges it)
        batch.builder.append(key=key, value=value, timestamp=None)

    async def _keyed_partition(self, topic: str, key: bytes | None) -> int:
        """The partition Kafka's default partitioner gives `key` in `topic`."""
        if key is None:
            raise ValueError(f"a message to {topic} has neither a partition nor a key")
        kafka = self._producer()
        partitions = kafka.client.cluster.partitions_for_topic(topic)
        if not partitions:
            partitions = await kafka.partitions_for(topic)  # fetches the topic's metadata
        return partition_for(key.decode(), len(partitions))

    async def _hand_over(self, slot: tuple[str, int]) -> None:
        batch = self._open.pop(slot)
        builder = batch.builder
        builder.close()
        topic, partition = slot
        try:
            # waits while aiokafka still holds an earlier batch of this partition unsent
            sent = await self._producer().send_batch(builder, topic, partition=partition)
        except Exception as error:  # refused before it left (a timeout, a closed producer)
            stop_before_commit([(topic, error)])
        self._confirm(topic, sent)
        if batch.table is not None:
            sent.add_done_callback(partial(self._persisted, batch.table, builder.record_count() - 1))
