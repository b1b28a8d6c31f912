"""Exactly-once mode's bookkeeping, with a producer that records what it is asked: which
offsets a transaction commits, what a message's turn allows, what fencing does. The whole of
it against a real broker is in tests/kafka/test_exactly_once.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import ProducerFenced
from aiokafka.structs import TopicPartition
from faust.types import TP

from stream.worker.commit_protocol import Transactions

ORDERS, TICKS = "orders", "ticks"


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, key: bytes | None, value: bytes | None, timestamp: Any) -> object | None:
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        pass

    def record_count(self) -> int:
        return len(self.records)


class FakeProducer:
    def __init__(self, number: int, log: list[tuple]) -> None:
        self.number = number
        self.log = log
        self.fenced = False
        self.in_transaction = False
        self.failing: BaseException | None = None  # what the next batch's ack fails with
        self.never_acked = False  # a fenced producer's batches: never acked, never failed

    async def start(self) -> None:
        self.log.append(("start", self.number))

    async def begin_transaction(self) -> None:
        assert not self.in_transaction
        self.in_transaction = True

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> asyncio.Future[Any]:
        assert self.in_transaction, "a send outside a transaction"
        self.log.append(("send", self.number, topic, batch.records))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.failing is not None:
            done.set_exception(self.failing)
        elif not self.never_acked:
            done.set_result(None)
        return done

    async def send_offsets_to_transaction(self, offsets: dict, group_id: str) -> None:
        if self.fenced:
            raise ProducerFenced()
        self.log.append(("offsets", self.number, dict(offsets), group_id))

    async def commit_transaction(self) -> None:
        self.in_transaction = False
        self.log.append(("commit", self.number))

    async def abort_transaction(self) -> None:
        self.in_transaction = False
        self.log.append(("abort", self.number))

    async def stop(self) -> None:
        self.log.append(("stop", self.number))


class FakeBook:
    def __init__(self) -> None:
        self.offsets: dict[TP, int] = {}

    def committed(self, tp: TP) -> int | None:
        return self.offsets.get(tp)

    def set_committed(self, offsets: dict[TP, int]) -> None:
        self.offsets.update(offsets)


def message(topic: str, partition: int, offset: int) -> Any:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, tp=TP(topic, partition))


@pytest.fixture
def setup() -> Any:
    log: list[tuple] = []
    producers: dict[int, FakeProducer] = {}
    stored: dict[TopicPartition, int] = {}
    seeks: list[dict] = []
    given_up: list[int] = []

    def open_producer(number: int) -> FakeProducer:
        producers[number] = FakeProducer(number, log)
        return producers[number]

    async def committed_offsets(tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: stored.get(tp, -1) for tp in tps}

    async def flush() -> None:
        log.append(("flush",))

    async def seek_wait(offsets: dict) -> None:
        seeks.append(dict(offsets))

    app = SimpleNamespace(
        conf=SimpleNamespace(id="group"),
        producer=SimpleNamespace(flush=flush),
        consumer=SimpleNamespace(seek_wait=seek_wait),
    )
    protocol = SimpleNamespace(book=FakeBook(), transactional=frozenset())
    transactions = Transactions(
        app,
        protocol,
        (ORDERS, TICKS),
        open_producer,
        committed_offsets,
        given_up.append,
        take_back_after=30.0,
    )  # type: ignore[arg-type]
    return SimpleNamespace(
        t=transactions,
        log=log,
        producers=producers,
        stored=stored,
        seeks=seeks,
        given_up=given_up,
        book=protocol.book,
    )


async def handle(
    t: Transactions, topic: str, partition: int, offset: int, outputs: list | None = None
) -> bool:
    async with t.handling(message(topic, partition, offset)) as handling:
        if not handling.go:
            return False
        if outputs:
            await t.send(partition, outputs)
        handling.done(topic, offset)
    return True


async def test_a_commit_sends_the_offset_after_the_last_message_handled_of_each_input_topic(setup):
    t = setup.t
    for offset in (5, 6, 7):
        assert await handle(t, ORDERS, 0, offset, [("transitions", b"c", b"v%d" % offset, 0)])
    assert await handle(t, TICKS, 0, 40)
    await t.commit()
    sent_offsets = [entry for entry in setup.log if entry[0] == "offsets"]
    assert sent_offsets == [
        ("offsets", 0, {TopicPartition(ORDERS, 0): 8, TopicPartition(TICKS, 0): 41}, "group")
    ]
    # what left outside transactions was confirmed first; the outputs before the offsets
    kinds = [entry[0] for entry in setup.log]
    assert kinds.index("flush") < kinds.index("send") < kinds.index("offsets") < kinds.index("commit")
    assert setup.book.committed(TP(ORDERS, 0)) == 8
    assert setup.producers[0].in_transaction, "a new transaction begins after a commit"


async def test_nothing_is_committed_for_a_partition_that_handled_no_message_since(setup):
    t = setup.t
    await handle(t, ORDERS, 1, 0)
    await t.commit()
    setup.log.clear()
    await t.commit()
    assert setup.log == []


async def test_a_message_below_the_committed_offset_is_not_handled(setup):
    t = setup.t
    setup.book.set_committed({TP(ORDERS, 0): 10})
    assert not await handle(t, ORDERS, 0, 9)
    assert await handle(t, ORDERS, 0, 10)


async def test_a_commit_waits_for_the_message_being_handled_and_takes_it_whole(setup):
    t = setup.t
    release = asyncio.Event()

    async def slow_message() -> None:
        async with t.handling(message(ORDERS, 0, 3)) as handling:
            await t.send(0, [("transitions", b"c", b"first half", 0)])
            await release.wait()
            await t.send(0, [("transitions", b"c", b"second half", 0)])
            handling.done(ORDERS, 3)

    handling = asyncio.create_task(slow_message())
    await asyncio.sleep(0.01)
    commit = asyncio.create_task(t.commit())
    await asyncio.sleep(0.01)
    assert not commit.done(), "the commit went ahead mid-message"
    release.set()
    await asyncio.gather(handling, commit)
    offsets = [entry for entry in setup.log if entry[0] == "offsets"]
    assert offsets == [("offsets", 0, {TopicPartition(ORDERS, 0): 4}, "group")]


async def test_a_partition_committed_while_it_changed_hands_is_read_from_where_that_ended(setup):
    setup.stored[TopicPartition(ORDERS, 2)] = 50
    setup.book.set_committed({TP(ORDERS, 2): 20})
    assert not await handle(setup.t, ORDERS, 2, 20), "committed by the previous owner since"
    assert setup.seeks == [{TP(ORDERS, 2): 50}]
    assert setup.book.committed(TP(ORDERS, 2)) == 50


async def test_a_fenced_producer_gives_its_partition_up_and_its_messages_are_refused(setup, monkeypatch):
    t = setup.t
    await handle(t, ORDERS, 0, 1)
    setup.producers[0].fenced = True
    await t.commit()
    assert setup.given_up == [0]
    assert not await handle(t, ORDERS, 0, 2)
    # a rebalance gives it back: a new producer, which fences the other one
    t.assigned({0})
    assert await handle(t, ORDERS, 0, 2)
    assert [entry for entry in setup.log if entry[0] == "start"] == [("start", 0), ("start", 0)]


async def test_a_partition_fenced_and_still_assigned_after_a_session_is_taken_back_from_its_committed_offset(
    setup, monkeypatch
):
    t = setup.t
    setup.book.set_committed({TP(ORDERS, 0): 1})
    await handle(t, ORDERS, 0, 1)
    setup.producers[0].fenced = True
    await t.commit()
    assert not await handle(t, ORDERS, 0, 2)
    later = t.given_up[0] + t.take_back_after + 1
    monkeypatch.setattr("stream.worker.commit_protocol.time.monotonic", lambda: later)
    setup.stored[TopicPartition(ORDERS, 0)] = 1
    assert await handle(t, ORDERS, 0, 1), "taken back"
    assert setup.seeks == [{TP(ORDERS, 0): 1}], "what was handled since the last commit is read again"


async def test_revoked_partitions_commit_what_they_hold_and_stop_their_producers(setup):
    t = setup.t
    await handle(t, ORDERS, 0, 1)
    await handle(t, ORDERS, 1, 1)
    await t.close({0})
    assert setup.log[-3:] == [("commit", 0), ("abort", 0), ("stop", 0)], (
        "the empty transaction after it aborted"
    )
    assert ("commit", 1) not in setup.log
    assert set(t.open) == {1}


async def test_a_batch_kafka_refused_stops_the_process_before_its_transaction_commits(setup, monkeypatch):
    """aiokafka would commit the transaction without it; its offsets must not go."""

    class Stopped(Exception):
        pass

    def stop_before_commit(failures: list) -> None:
        raise Stopped(failures)

    monkeypatch.setattr("stream.worker.commit_protocol.stop_before_commit", stop_before_commit)
    t = setup.t
    await handle(t, ORDERS, 0, 1)
    setup.producers[0].failing = ValueError("record too large")
    await t.send(0, [("dead-letters", b"c", b"x" * 10, 0)])
    with pytest.raises(Stopped, match="record too large"):
        await t.commit()
    assert ("commit", 0) not in setup.log


def test_held_resends_are_released_with_their_message_unless_committed_since():
    from prometheus_client import CollectorRegistry

    from stream.worker.metrics import WorkerMetrics
    from stream.worker.resends import Resends
    from stream.worker.state import Outbox

    sent: list[bytes] = []
    outputs = SimpleNamespace(change_again=lambda key, raw, source: sent.append(raw))
    committed = {ORDERS: 3}
    resends = Resends(
        outputs,  # type: ignore[arg-type]
        lambda topic, number: committed.get(topic),
        lambda *args: None,
        None,
        WorkerMetrics(CollectorRegistry()),
        hold=True,
    )
    outboxes = [Outbox(ORDERS, 4, [b"of 4"]), Outbox(ORDERS, 6, [b"of 6"]), Outbox(TICKS, 9, [b"of tick 9"])]
    resends.outboxes(0, b"c", outboxes)
    assert sent == [], "held until their messages come again"
    committed[ORDERS] = 5  # the previous owner's last commit, found once fenced
    resends.release(0, ORDERS, 6)
    assert sent == [b"of 6"]
    resends.release(0, TICKS, 9)
    assert sent == [b"of 6", b"of tick 9"]


async def test_messages_handled_while_a_transaction_commits_go_into_the_next_one_in_order(setup):
    t = setup.t
    await handle(t, ORDERS, 0, 1, [("transitions", b"c", b"one", 0)])
    producer = setup.producers[0]
    committing, kafka_answers = asyncio.Event(), asyncio.Event()
    plain_commit = producer.commit_transaction

    async def slow_commit() -> None:
        committing.set()
        await kafka_answers.wait()
        await plain_commit()

    producer.commit_transaction = slow_commit  # type: ignore[method-assign]
    first = asyncio.create_task(t.commit())
    await committing.wait()
    assert await handle(t, ORDERS, 0, 2, [("transitions", b"c", b"two", 0)]), "not held up by the commit"
    assert await handle(t, ORDERS, 0, 3, [("transitions", b"c", b"three", 0)])
    kafka_answers.set()
    await first
    await t.commit()
    steps = [(e[0], e[2] if e[0] == "offsets" else e[3] if e[0] == "send" else None) for e in setup.log]
    steps = [step for step in steps if step[0] in ("send", "offsets", "commit")]
    ordered = TopicPartition(ORDERS, 0)
    assert steps == [
        ("send", [(b"c", b"one")]),
        ("offsets", {ordered: 2}),
        ("commit", None),
        ("send", [(b"c", b"two"), (b"c", b"three")]),
        ("offsets", {ordered: 4}),
        ("commit", None),
    ]


async def test_a_fenced_producer_whose_batches_are_never_acked_does_not_hold_up_the_commits(setup):
    """What aiokafka does: a batch sent after the fence stays pending for good."""
    t = setup.t
    producer = await t._ready(0)
    assert producer is not None
    producer.producer.fenced = True
    producer.producer.never_acked = True
    await handle(t, ORDERS, 0, 1, [("transitions", b"c", b"lost", 0)])
    await asyncio.wait_for(t.commit(), timeout=5)
    assert setup.given_up == [0]


def test_a_fenced_partitions_tables_are_restored_whole_next_time():
    """What the worker wrote after another took the partition over may sit after that one's
    records in the changelog: the offset it noted as persisted no longer says what it holds."""
    from stream.worker.faust_internals.tables import restore_whole_next_time

    noted: dict[TP, int] = {TP("app-customers-changelog", 1): 4000}
    table = SimpleNamespace(
        changelog_topic=SimpleNamespace(get_topic_name=lambda: "app-customers-changelog"),
        data=SimpleNamespace(set_persisted_offset=noted.__setitem__),
    )
    restore_whole_next_time(table, 1)
    assert noted == {TP("app-customers-changelog", 1): -1}


async def test_a_message_after_a_session_without_a_commit_first_asks_whether_the_producer_was_fenced(
    setup, monkeypatch
):
    """A process frozen past its session and woken: its first message must not be handled
    (nor written to the changelogs) before Kafka says whether another worker took over."""
    t = setup.t
    setup.book.set_committed({TP(ORDERS, 0): 5})
    assert await handle(t, ORDERS, 0, 5)
    await t.commit()
    woken = t.open[0].known_alive_at + t.take_back_after + 1
    monkeypatch.setattr("stream.worker.commit_protocol.time.monotonic", lambda: woken)
    setup.producers[0].fenced = True
    assert not await handle(t, ORDERS, 0, 6), "handled although fenced"
    assert setup.given_up == [0]


async def test_the_same_question_costs_nothing_more_when_the_producer_is_still_ours(setup, monkeypatch):
    t = setup.t
    setup.book.set_committed({TP(ORDERS, 0): 5})
    assert await handle(t, ORDERS, 0, 5)
    woken = t.open[0].known_alive_at + t.take_back_after + 1
    monkeypatch.setattr("stream.worker.commit_protocol.time.monotonic", lambda: woken)
    assert await handle(t, ORDERS, 0, 6)
    asked = [entry for entry in setup.log if entry[0] == "offsets"]
    assert asked == [("offsets", 0, {TopicPartition(ORDERS, 0): 5}, "group")], (
        "the committed offset, unchanged"
    )
    assert await handle(t, ORDERS, 0, 7)
    assert len([entry for entry in setup.log if entry[0] == "offsets"]) == 1, "asked once, not per message"
