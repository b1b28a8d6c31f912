"""Messages handed to aiokafka a batch at a time, not a message at a time.

aiokafka's `send` costs far more than the bytes it queues: a coroutine, the partitioner, a
future per message, and on the ack a result and a callback per message. An agent that only
iterates the orders topic and produces three messages an event (as many as the worker
sends) ran at 2,205 events/s through `send` and at 4,550 through aiokafka's batch API,
against 5,929 iterating alone (bench/worker_bench.py). So the worker, `lifecycle send` and
`lifecycle rebuild` fill one batch per topic partition and hand it over whole: when it is
full, and whenever the caller says (the worker: every 20 ms and before every commit).

A partition's messages keep their order: one batch of a partition is open at a time, and
batches are handed over in the order they were filled, under one lock shared by every
caller. A batch is closed before it is handed over, so no message sent another way can join
it and aiokafka sends it without lingering again; aiokafka takes the next batch of that
partition only once it has taken the previous one, which bounds what waits in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from .partitioning import partition_for

# (topic, key, value, partition, ...): what follows the partition is the caller's, not sent
Message = tuple[str, bytes | None, bytes | None, int | None, *tuple[Any, ...]]


class HandOverFailed(Exception):
    """aiokafka refused a batch before sending it (a timeout, a closed producer)."""

    def __init__(self, topic: str, error: BaseException) -> None:
        super().__init__(f"a batch for {topic} was refused: {error!r}")
        self.topic = topic
        self.error = error


class Batches:
    def __init__(
        self,
        producer: Callable[[], Any],
        on_handed: Callable[[str, asyncio.Future[Any], int], None] | None = None,
        before_hand_over: Callable[[], None] = lambda: None,
    ) -> None:
        """`producer` gives aiokafka's producer; `on_handed(topic, ack, records)` runs for
        every batch handed over: `ack` gives the offset of its first record once Kafka has it.
        Without `on_handed`, the acks are kept for `confirmed`. `before_hand_over` runs before
        any batch is handed over (and whenever every batch is asked for, even with none)."""
        self._producer = producer
        self._before_hand_over = before_hand_over
        self._acks: list[asyncio.Future[Any]] = []
        self._on_handed = on_handed or (lambda topic, ack, records: self._acks.append(ack))
        self._open: dict[tuple[str, int], Any] = {}
        self._lock = asyncio.Lock()

    async def send(
        self, messages: Sequence[tuple[str, bytes | None, bytes | None, int | None, *tuple[Any, ...]]]
    ) -> None:
        """Add (topic, key, value, partition, ...) messages, in order, to their partitions'
        batches (what follows the partition is not sent); a message without a partition goes
        where Kafka's default partitioner puts its key. Batches that fill are handed over."""
        async with self._lock:
            for topic, key, value, partition, *_ in messages:
                if partition is None:
                    partition = await self._keyed_partition(topic, key)
                await self._add(topic, partition, key, value)

    async def hand_over_all(self) -> None:
        """Hand over every batch not empty."""
        async with self._lock:
            self._before_hand_over()
            for slot in list(self._open):
                await self._hand_over(slot)

    async def confirmed(self) -> None:
        """Hand over every batch, and return once Kafka has acked all those handed over so
        far (without `on_handed`); a batch that failed for good raises here."""
        await self.hand_over_all()
        acks, self._acks = self._acks, []
        await asyncio.gather(*acks)

    async def _add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        slot = (topic, partition)
        builder = self._open.get(slot)
        if builder is None:
            builder = self._open[slot] = self._producer().create_batch()
        elif builder.append(key=key, value=value, timestamp=None) is not None:
            return
        else:  # full: it goes, and the message starts the next one
            await self._hand_over(slot)
            builder = self._open[slot] = self._producer().create_batch()
        # an empty batch takes any message (one larger than a batch goes alone; Kafka judges it)
        builder.append(key=key, value=value, timestamp=None)

    async def _keyed_partition(self, topic: str, key: bytes | None) -> int:
        if key is None:
            raise ValueError(f"a message to {topic} has neither a partition nor a key")
        kafka = self._producer()
        partitions = kafka.client.cluster.partitions_for_topic(topic)
        if not partitions:
            partitions = await kafka.partitions_for(topic)  # fetches the topic's metadata
        return partition_for(key.decode(), len(partitions))

    async def _hand_over(self, slot: tuple[str, int]) -> None:
        self._before_hand_over()
        builder = self._open.pop(slot)
        builder.close()
        topic, partition = slot
        try:
            # waits while aiokafka still holds an earlier batch of this partition untaken
            ack = await self._producer().send_batch(builder, topic, partition=partition)
        except Exception as error:
            raise HandOverFailed(topic, error) from error
        self._on_handed(topic, ack, builder.record_count())
