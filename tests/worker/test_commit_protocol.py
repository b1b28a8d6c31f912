"""faust's own offset bookkeeping, with the worker's ack guard: a message skipped in a
rebalance or a shutdown never moves the committed offset past itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import Message

from stream.worker.commit_protocol import CommitProtocol
from stream.worker.faust_internals.consumer import Consumer, Transport

ORDERS = TP("orders", 0)
COMMITTED = 100


@pytest.fixture(params=["faust's consumer", "the worker's consumer"])
def consumer_app(request: pytest.FixtureRequest) -> Any:
    """A faust app, with faust's consumer or the one the worker delivers with."""

    def new_app(name: str) -> faust.App:
        app = faust.App(name, broker="kafka://127.0.0.1:9", store="memory://", autodiscover=False)
        if request.param == "the worker's consumer":
            app.transport = Transport(app.conf.broker_consumer, app)
            assert isinstance(app.consumer, Consumer)
        return app

    return new_app


@pytest.fixture
def app(consumer_app: Any) -> Iterator[faust.App]:
    app = consumer_app("acks-test")
    app.topics.acks_enabled_for = lambda topic: True  # as for the orders topic of an agent
    app.protocol = CommitProtocol.install(app)
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


async def test_a_partition_never_committed_starts_at_its_beginning_not_where_the_fetcher_got_to(app):
    consumer = app.consumer
    del consumer._committed_offset[ORDERS]
    sought: dict[TP, int] = {}

    async def nothing_committed() -> dict[TP, None]:
        return {ORDERS: None}

    async def position(tp: TP) -> int:
        return 1013  # past messages fetched, and dropped, while the streams were paused

    async def earliest_offsets(*tps: TP) -> dict[TP, int]:
        return {tp: 0 for tp in tps}

    async def seek_wait(offsets: dict[TP, int]) -> None:
        sought.update(offsets)

    consumer.seek_to_committed = nothing_committed
    consumer.assignment = lambda: {ORDERS}
    consumer.position = position
    consumer.earliest_offsets = earliest_offsets
    consumer.seek_wait = seek_wait
    await consumer.perform_seek()
    assert sought == {ORDERS: 0}
    processed(app, range(0, 3))
    assert consumer._new_offset(ORDERS) == 3


@pytest.fixture
def counted_app(consumer_app: Any) -> Iterator[tuple[faust.App, list[int]]]:
    """An app whose worker has processed orders offsets up to `last[0]`."""
    last = [COMMITTED - 1]
    app = consumer_app("acks-gaps")
    app.topics.acks_enabled_for = lambda topic: True
    CommitProtocol.install(app, ORDERS.topic, lambda partition: last[0])
    app.consumer_generation_id = 1
    app.flow_control.resume()
    app.consumer._committed_offset[ORDERS] = COMMITTED
    yield app, last


def processed_through(app: faust.App, last: list[int], offsets: range) -> None:
    processed(app, offsets)
    last[0] = offsets[-1]


def commit_while_it_moves(app: faust.App) -> int:
    """The committed offset after faust's periodic commits have done all they would."""
    consumer = app.consumer
    while True:
        offset = consumer._new_offset(ORDERS)
        if offset is None or offset <= consumer._committed_offset[ORDERS]:
            return int(consumer._committed_offset[ORDERS])
        consumer._committed_offset[ORDERS] = offset


async def test_a_gap_faust_opens_past_the_last_processed_offset_is_not_committed(counted_app):
    app, last = counted_app
    processed_through(app, last, range(100, 104))
    # what faust records when it reads 651 with its read offset reset to 100 by a seek
    await app.consumer._add_gap(ORDERS, 101, 650)
    assert commit_while_it_moves(app) == 104
    processed_through(app, last, range(104, 110))
    assert commit_while_it_moves(app) == 110


async def test_a_gap_between_processed_offsets_is_committed_as_faust_does_for_markers(counted_app):
    app, last = counted_app
    processed_through(app, last, range(100, 104))
    await app.consumer._add_gap(ORDERS, 104, 104)  # a transaction marker at 104
    processed_through(app, last, range(105, 107))
    assert commit_while_it_moves(app) == 107


async def test_a_gap_over_offsets_processed_after_all_is_committed_whole_not_an_offset_a_time(counted_app):
    app, last = counted_app
    consumer = app.consumer
    # faust's read offset jumped from 100 to a message fetched before a rebalance, 200; the
    # worker then read the partition again from 100 and processed it up to 150
    await consumer._add_gap(ORDERS, 100, 199)
    processed_through(app, last, range(100, 151))
    assert consumer._new_offset(ORDERS) == 151
    consumer._committed_offset[ORDERS] = 151
    processed_through(app, last, range(151, 160))
    assert consumer._new_offset(ORDERS) == 160


def test_a_message_the_worker_refused_is_not_committed_by_its_ack(app):
    processed(app, range(100, 102))
    refused = _message(102, generation=1)
    app.protocol.refuse(refused)
    app.consumer.ack(refused)
    assert refused.acked and refused not in app.consumer.unacked
    assert app.consumer._new_offset(ORDERS) == 102
    processed(app, range(102, 104))  # read again, processed this time
    app.consumer._committed_offset[ORDERS] = 102
    assert app.consumer._new_offset(ORDERS) == 104


def test_no_orders_offset_is_committed_past_the_message_after_the_last_one_processed(app, caplog):
    ticks = TP("ticks", 0)
    wanted = {ORDERS: 3894, ticks: 77}

    def processed_through(last: int | None) -> dict[TP, int]:
        protocol = CommitProtocol(app, ORDERS.topic, lambda partition: last)
        return protocol.processed_only(wanted)

    assert processed_through(3101) == {ORDERS: 3102, ticks: 77}
    assert "faust would commit 3894, past the last offset processed here (3101)" in caplog.text
    # nothing processed in this ownership: nothing of the partition is committed
    assert processed_through(None) == {ticks: 77}
    # within what was processed, faust's offset stands
    wanted = {ORDERS: 120}
    assert processed_through(150) == {ORDERS: 120}
