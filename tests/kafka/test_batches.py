"""Batches of messages (`stream.kafka.batches`) against a stand-in producer; the real broker
tests (tests/kafka) send every message of the worker, `lifecycle send` and `rebuild` so."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from stream.kafka.batches import Batches


class FakeBuilder:
    def __init__(self, capacity: int) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.capacity = capacity
        self.closed = False

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: None) -> object | None:
        if self.closed or len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        self.closed = True

    def record_count(self) -> int:
        return len(self.records)


class FakeProducer:
    """Hands out builders of `capacity` records; keeps what is handed over, in order."""

    def __init__(self, partitions: dict[str, int], capacity: int = 100) -> None:
        self.partitions = partitions
        self.known: set[str] = set()  # topics whose metadata the client holds
        self.capacity = capacity
        self.handed: list[tuple[str, int, FakeBuilder, asyncio.Future[Any]]] = []
        self.client = SimpleNamespace(cluster=SimpleNamespace(partitions_for_topic=self._known_partitions))

    def _known_partitions(self, topic: str) -> set[int] | None:
        return set(range(self.partitions[topic])) if topic in self.known else None

    async def partitions_for(self, topic: str) -> set[int]:
        self.known.add(topic)
        return set(range(self.partitions[topic]))

    def create_batch(self) -> FakeBuilder:
        return FakeBuilder(self.capacity)

    async def send_batch(self, builder: FakeBuilder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.handed.append((topic, partition, builder, ack))
        return ack

    def sent(self, topic: str, partition: int) -> list[bytes | None]:
        return [
            value
            for t, p, builder, _ in self.handed
            if (t, p) == (topic, partition)
            for _, value in builder.records
        ]


def batches_over(producer: FakeProducer) -> tuple[Batches, list[tuple[str, int]]]:
    """Batches over `producer`, and what each handed over said: (topic, records)."""
    handed: list[tuple[str, int]] = []
    batches = Batches(lambda: producer, lambda topic, ack, records: handed.append((topic, records)))
    return batches, handed


async def test_nothing_leaves_until_handed_over_and_then_each_partition_in_the_order_made() -> None:
    producer = FakeProducer({"state": 2})
    batches, handed = batches_over(producer)
    outputs = [("state", b"c%d" % i, b"v%d" % i, i % 2) for i in range(6)]
    await batches.send(outputs[:3])
    await batches.send(outputs[3:])
    assert producer.handed == []

    await batches.hand_over_all()
    assert producer.sent("state", 0) == [b"v0", b"v2", b"v4"]
    assert producer.sent("state", 1) == [b"v1", b"v3", b"v5"]
    assert all(builder.closed for _, _, builder, _ in producer.handed)  # nothing joins them after
    assert handed == [("state", 3), ("state", 3)]

    await batches.hand_over_all()  # nothing new: nothing handed over
    assert len(producer.handed) == 2


async def test_a_full_batch_goes_at_once_and_the_message_that_did_not_fit_starts_the_next() -> None:
    producer = FakeProducer({"state": 1}, capacity=2)
    batches, _ = batches_over(producer)
    await batches.send([("state", b"c", b"v%d" % i, 0) for i in range(5)])
    assert [builder.records for _, _, builder, _ in producer.handed] == [
        [(b"c", b"v0"), (b"c", b"v1")],
        [(b"c", b"v2"), (b"c", b"v3")],
    ]
    await batches.hand_over_all()
    assert producer.sent("state", 0) == [b"v%d" % i for i in range(5)]


async def test_a_message_without_a_partition_goes_where_kafkas_default_partitioner_puts_its_key() -> None:
    producer = FakeProducer({"transitions": 5})
    batches, _ = batches_over(producer)
    keys = [b"c%d" % i for i in range(40)]
    await batches.send([("transitions", key, key, None) for key in keys])
    await batches.hand_over_all()

    partitioner = DefaultPartitioner()
    for key in keys:
        expected = partitioner(key, list(range(5)), list(range(5)))
        assert key in producer.sent("transitions", expected)
    assert sum(len(builder.records) for _, _, builder, _ in producer.handed) == len(keys)


async def test_a_message_with_neither_partition_nor_key_is_refused_before_anything_is_sent() -> None:
    producer = FakeProducer({"transitions": 2})
    batches, _ = batches_over(producer)
    with pytest.raises(ValueError, match="neither a partition nor a key"):
        await batches.send([("transitions", None, b"v", None)])


async def test_confirmed_hands_everything_over_and_raises_when_kafka_refused_a_batch() -> None:
    producer = FakeProducer({"orders": 2})
    batches = Batches(lambda: producer)
    await batches.send([("orders", b"c%d" % i, b"v", i % 2) for i in range(4)])
    confirming = asyncio.ensure_future(batches.confirmed())
    while len(producer.handed) < 2:
        await asyncio.sleep(0)
    assert not confirming.done()  # waits for the acks
    producer.handed[0][3].set_result(0)
    producer.handed[1][3].set_exception(RuntimeError("refused"))
    with pytest.raises(RuntimeError, match="refused"):
        await confirming


async def test_what_must_come_before_any_batch_leaves_runs_before_each_hand_over() -> None:
    producer = FakeProducer({"state": 1}, capacity=2)
    handed_when_asked: list[int] = []  # how many batches had been handed over, at each call
    batches = Batches(
        lambda: producer, before_hand_over=lambda: handed_when_asked.append(len(producer.handed))
    )
    await batches.send([("state", b"c", b"v%d" % i, 0) for i in range(3)])  # the first batch fills
    assert handed_when_asked == [0]
    await batches.hand_over_all()
    assert handed_when_asked[-1] == 1 and len(producer.handed) == 2
    asked = len(handed_when_asked)
    await batches.hand_over_all()  # nothing to hand over: asked all the same
    assert len(handed_when_asked) == asked + 1
