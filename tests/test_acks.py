"""faust's own offset bookkeeping, with the worker's ack guard: a message skipped in a
rebalance or a shutdown never moves the committed offset past itself."""

from __future__ import annotations

from collections.abc import Iterator

import faust
import pytest
from faust.types import TP
from faust.types.tuples import Message

from stream.worker import acks

ORDERS = TP("orders", 0)
COMMITTED = 100


@pytest.fixture
def app() -> Iterator[faust.App]:
    app = faust.App("acks-test", broker="kafka://127.0.0.1:9", store="memory://", autodiscover=False)
    app.topics.acks_enabled_for = lambda topic: True  # as for the orders topic of an agent
    acks.install(app)
    app.consumer_generation_id = 1
    app.flow_control.resume()
    app.consumer._committed_offset[ORDERS] = COMMITTED  # what faust finds at assignment
    yield app


def processed(app: faust.App, offsets: range) -> None:
    for offset in offsets:
        app.consumer.ack(_message(offset, app.consumer_generation_id))


def _message(offset: int, generation: int) -> Message:
    topic, partition = ORDERS
    return Message(topic, partition, offset, 0.0, 0, None, b"c1", b"{}", None, generation_id=generation)


async def test_a_message_skipped_in_a_revocation_is_not_committed_when_the_partition_comes_back(app):
    consumer = app.consumer
    processed(app, range(100, 105))
    skipped = _message(105, generation=1)

    async def app_side_of_the_revocation(revoked: set[TP]) -> None:
        # faust's app stops the flow after the consumer forgot the partition; the stream
        # then skips the message it holds, and acks it
        app.flow_control.suspend()
        consumer.ack(skipped)

    consumer._on_partitions_revoked = app_side_of_the_revocation
    await consumer.on_partitions_revoked({ORDERS})
    assert skipped.acked  # no longer waited for
    assert skipped not in consumer.unacked

    app.consumer_generation_id = 2  # the partition comes back, nothing committed meanwhile
    app.flow_control.resume()
    consumer._committed_offset[ORDERS] = COMMITTED
    processed(app, range(100, 105))
    assert consumer._new_offset(ORDERS) == 105


def test_a_message_skipped_in_a_shutdown_is_not_committed(app):
    processed(app, range(100, 103))
    app.flow_control.suspend()
    app.consumer.ack(_message(103, generation=1))
    assert app.consumer._new_offset(ORDERS) == 103


def test_a_message_fetched_before_a_rebalance_is_not_committed_after_it(app):
    processed(app, range(100, 102))
    app.consumer_generation_id = 2
    app.consumer.ack(_message(102, generation=1))
    assert app.consumer._new_offset(ORDERS) == 102


def test_nothing_is_committed_past_a_hole_before_the_first_acked_offset(app):
    consumer = app.consumer
    consumer._committed_offset[ORDERS] = 0  # faust skips its own check at 0
    processed(app, range(5, 7))
    assert consumer._new_offset(ORDERS) is None
    processed(app, range(0, 5))
    assert consumer._new_offset(ORDERS) == 7


def test_without_a_known_committed_offset_nothing_is_committed(app):
    consumer = app.consumer
    del consumer._committed_offset[ORDERS]  # a partition never committed, before the seek
    processed(app, range(1986, 1987))
    assert consumer._new_offset(ORDERS) is None


async def test_the_seek_makes_the_start_of_a_partition_never_committed_known(app):
    consumer = app.consumer
    del consumer._committed_offset[ORDERS]

    async def nothing_committed() -> dict[TP, None]:
        return {ORDERS: None}

    async def position(tp: TP) -> int:
        return 0  # where the consumer starts: the beginning of the partition

    consumer.seek_to_committed = nothing_committed
    consumer.assignment = lambda: {ORDERS}
    consumer.position = position
    await consumer.perform_seek()
    processed(app, range(0, 3))
    assert consumer._new_offset(ORDERS) == 3
