"""The worker's batches (`stream.worker.batches`) against a stand-in producer; the real
broker tests (tests/kafka) run every message of the worker through them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from stream.worker.batches import Batches
from stream.worker.runtime import Output


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


def batches_over(producer: FakeProducer) -> tuple[Batches, list[str], list[tuple[str, int]]]:
    confirmed: list[str] = []
    persisted: list[tuple[str, int]] = []

    def note(table: str, last: int, ack: asyncio.Future[Any]) -> None:
        persisted.append((table, ack.result() + last))

    batches = Batches(lambda: producer, lambda topic, ack: confirmed.append(topic), note)
    return batches, confirmed, persisted


async def test_nothing_leaves_until_handed_over_and_then_each_partition_in_the_order_made() -> None:
    producer = FakeProducer({"state": 2})
    batches, confirmed, _ = batches_over(producer)
    outputs = [Output("state", b"c%d" % i, b"v%d" % i, i % 2) for i in range(6)]
    await batches.send(outputs[:3])
    await batches.send(outputs[3:])
    assert producer.handed == []

    await batches.hand_over_all()
    assert producer.sent("state", 0) == [b"v0", b"v2", b"v4"]
    assert producer.sent("state", 1) == [b"v1", b"v3", b"v5"]
    assert all(builder.closed for _, _, builder, _ in producer.handed)  # nothing joins them after
    assert confirmed == ["state", "state"]  # each batch's ack awaited by the next commit

    await batches.hand_over_all()  # nothing new: nothing handed over
    assert len(producer.handed) == 2


async def test_a_full_batch_goes_at_once_and_the_message_that_did_not_fit_starts_the_next() -> None:
    producer = FakeProducer({"state": 1}, capacity=2)
    batches, _, _ = batches_over(producer)
    await batches.send([Output("state", b"c", b"v%d" % i, 0) for i in range(5)])
    assert [builder.records for _, _, builder, _ in producer.handed] == [
        [(b"c", b"v0"), (b"c", b"v1")],
        [(b"c", b"v2"), (b"c", b"v3")],
    ]
    await batches.hand_over_all()
    assert producer.sent("state", 0) == [b"v%d" % i for i in range(5)]


async def test_a_message_without_a_partition_goes_where_kafkas_default_partitioner_puts_its_key() -> None:
    producer = FakeProducer({"transitions": 5})
    batches, _, _ = batches_over(producer)
    keys = [b"c%d" % i for i in range(40)]
    await batches.send([Output("transitions", key, key, None) for key in keys])
    await batches.hand_over_all()

    partitioner = DefaultPartitioner()
    for key in keys:
        expected = partitioner(key, list(range(5)), list(range(5)))
        assert key in producer.sent("transitions", expected)
    assert sum(len(builder.records) for _, _, builder, _ in producer.handed) == len(keys)


async def test_a_changelog_batch_notes_the_offset_of_its_last_record_once_acked() -> None:
    producer = FakeProducer({"changelog": 1, "state": 1})
    batches, _, persisted = batches_over(producer)
    await batches.send(
        [Output("changelog", b"c%d" % i, b"v", 0, "customers") for i in range(3)]
        + [Output("state", b"c", b"v", 0)]
    )
    await batches.hand_over_all()
    acks = {topic: ack for topic, _, _, ack in producer.handed}
    acks["state"].set_result(7)
    acks["changelog"].set_result(100)  # the batch's first record's offset
    await asyncio.sleep(0)  # done-callbacks run on the loop's next turn
    assert persisted == [("customers", 102)]
