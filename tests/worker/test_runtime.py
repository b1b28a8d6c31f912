"""The live worker's logic without Kafka: plain dicts stand in for the Faust tables."""

from __future__ import annotations

import orjson
import pytest

from stream.config import config_from_mapping, load_config
from stream.inputs.messages import Tick, encode
from stream.lifecycle.instants import from_us
from stream.worker.offsets import FETCHED_PAST_LOOKS
from stream.worker.runtime import CATCH_UP_STEP, Output, Worker
from stream.worker.state import decode_stored
from tests.helpers import NOW, at, cancelled, erased, placed


def _worker() -> Worker:
    config = load_config(None, environ={}, overrides={"kafka": {"partitions": 1}})
    return Worker(config, {}, {}, {}, now_us=lambda: NOW, owned_partitions=lambda: [0])


def _names(worker: Worker) -> list[str]:
    topic = worker.topics.transitions
    return [orjson.loads(o.value)["transition"] for o in worker.drain() if o.topic == topic and o.value]


def test_a_tick_far_ahead_fires_its_deadlines_a_step_at_a_time_and_all_of_them():
    worker = _worker()
    customers = CATCH_UP_STEP * 2 + 7
    orders = worker.topics.orders
    for i in range(customers):
        event = placed(f"c{i}", f"o{i}", at(0, us=i))
        worker.on_message(orders, 0, i, f"c{i}".encode(), orjson.dumps(event))
    assert _names(worker) == ["became_one_timer"] * customers

    tick = encode(Tick(at=from_us(at(40))))
    worker.on_message(worker.topics.ticks, 0, 0, None, tick)
    steps = [_names(worker)]
    while worker.catching_up(0):
        worker.catch_up(0)
        steps.append(_names(worker))

    assert [len(step) for step in steps] == [CATCH_UP_STEP, CATCH_UP_STEP, 7]
    assert all(name == "went_inactive" for step in steps for name in step)
    assert worker.partitions[0].core.clock_us == at(40)
    assert not worker.catching_up(0)


def test_a_partition_let_go_of_mid_catch_up_stops_there():
    worker = _worker()
    orders = worker.topics.orders
    for i in range(CATCH_UP_STEP + 1):
        event = placed(f"c{i}", f"o{i}", at(0, us=i))
        worker.on_message(orders, 0, i, f"c{i}".encode(), orjson.dumps(event))
    worker.drain()
    worker.on_message(worker.topics.ticks, 0, 0, None, encode(Tick(at=from_us(at(40)))))
    assert worker.catching_up(0)
    worker.let_go([0])
    assert not worker.catching_up(0)
    worker.catch_up(0)  # nothing to do, nothing raised


def _order_at(worker: Worker, offset: int) -> int | None:
    event = placed(f"c{offset}", f"o{offset}", at(0, us=offset))
    return worker.on_message(worker.topics.orders, 0, offset, None, orjson.dumps(event))


def _customers(worker: Worker) -> set[str]:
    topic = worker.topics.customer_state
    return {o.key.decode() for o in worker.drain() if o.topic == topic and o.key}


def test_a_message_past_a_hole_is_not_processed_and_the_partition_is_read_again_from_the_hole():
    worker = _worker()
    assert [_order_at(worker, offset) for offset in (0, 1)] == [None, None]
    assert _order_at(worker, 4) == 2  # 2 and 3 never arrived
    assert _order_at(worker, 5) == 2  # still ahead of the hole: read again from 2
    assert _customers(worker) == {"c0", "c1"}
    assert [_order_at(worker, offset) for offset in (2, 3, 4, 5)] == [None] * 4
    assert _customers(worker) == {"c2", "c3", "c4", "c5"}
    registry = worker.metrics.registry
    assert registry.get_sample_value("lifecycle_orders_rereads_total", {"partition": "0"}) == 1
    assert registry.get_sample_value("lifecycle_skipped_orders_total", {"partition": "0"}) is None


def test_offsets_with_no_message_on_a_re_read_are_a_real_gap_counted_as_skipped(caplog):
    worker = _worker()
    _order_at(worker, 0)
    assert _order_at(worker, 3) == 1
    assert _order_at(worker, 3) is None  # the re-read from 1 found 3 first: 1 and 2 hold no message
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == [
        "orders partition 0: offset 3 follows 0: 2 message(s) skipped (no message there on a re-read: "
        "transaction markers?)"
    ]
    assert _customers(worker) == {"c0", "c3"}
    registry = worker.metrics.registry
    assert registry.get_sample_value("lifecycle_skipped_orders_total", {"partition": "0"}) == 2


def test_the_first_message_of_an_ownership_must_be_the_committed_offset():
    config = load_config(None, environ={}, overrides={"kafka": {"partitions": 1}})
    worker = Worker(
        config, {}, {}, {}, now_us=lambda: NOW, owned_partitions=lambda: [0], committed_offset=lambda t, n: 7
    )
    assert _order_at(worker, 9) == 7
    assert _order_at(worker, 7) is None


def test_the_state_says_where_a_new_owner_resumes_whatever_offset_was_committed():
    tables = _Restartable()
    first = tables.start()
    assert [_order_at(first, offset) for offset in range(4)] == [None] * 4
    orders = first.topics.orders
    first.on_message(orders, 0, 4, None, b"not an order")  # dead-lettered: it writes no customer
    # faust committed past what was processed (docs/field-notes.md): the next owner is told 9
    tables.committed = 9
    second = tables.start()
    second.take_up([0])
    assert second.partitions[0].offsets.recorded_through == 4
    assert _order_at(second, 9) == 5  # a message past the hole: read again from the state's 5
    assert [_order_at(second, offset) for offset in range(5, 10)] == [None] * 5
    assert _customers(second) == {f"c{offset}" for offset in range(5, 10)}


def test_a_partition_with_nothing_to_read_is_rewound_to_its_state_once():
    tables = _Restartable()
    first = tables.start()
    assert [_order_at(first, offset) for offset in range(3)] == [None] * 3
    first.flush_store()  # committed: its outputs left, and the store is written before they do
    tables.committed = 3
    second = tables.start()
    second.take_up([0])
    assert second.rewinds([0]) == {}  # committed right after the last message processed
    tables.committed = 8
    third = tables.start()
    third.take_up([0])
    assert third.rewinds([0]) == {0: 3}
    assert third.rewinds([0]) == {}  # asked for once; the re-read is on its way
    registry = third.metrics.registry
    assert registry.get_sample_value("lifecycle_orders_rereads_total", {"partition": "0"}) == 1


def test_a_message_that_changes_no_customer_still_leaves_its_offset_in_the_state():
    tables = _Restartable()
    worker = tables.start()
    assert _order_at(worker, 0) is None
    event = placed("c0", "o0", at(0))  # the same order again: a duplicate, nothing written
    assert worker.on_message(worker.topics.orders, 0, 1, None, orjson.dumps(event)) is None
    restarted = tables.start()
    restarted.take_up([0])
    assert restarted.partitions[0].offsets.recorded_through == 1


def test_a_static_member_id_names_the_host_and_web_address_it_was_given_with():
    from stream.worker.app import _group_instance_id

    def member(port: int, host: str = "0.0.0.0") -> str:
        overrides = {"worker": {"static_membership": True, "web_port": port, "web_host": host}}
        return _group_instance_id(load_config(None, environ={}, overrides=overrides))

    # same address, same member (its assignment comes back); another address, a new member
    assert member(6066) == member(6066)
    assert len({member(6066), member(6067), member(6066, host="10.0.0.7")}) == 3


class _Restartable:
    """A worker over tables that outlive it (the local store), with what it re-sent."""

    def __init__(self, guarantee: str = "at_least_once") -> None:
        self.guarantee = guarantee
        self.customers: dict = {}
        self.clocks: dict = {}
        self.erasures: dict = {}
        self.committed: int | None = None
        self.resent: list[tuple[str, int, bytes, bytes | None]] = []

    def start(self) -> Worker:
        overrides = {"kafka": {"partitions": 1}, "worker": {"processing_guarantee": self.guarantee}}
        config = load_config(None, environ={}, overrides=overrides)
        return Worker(
            config,
            self.customers,
            self.clocks,
            self.erasures,
            now_us=lambda: NOW,
            owned_partitions=lambda: [0],
            committed_offset=lambda topic, partition: self.committed,
            resend_changelog=lambda table, n, key, value: self.resent.append((table, n, key, value)),
        )

    def processed(self, history: list[dict]) -> tuple[Worker, list[Output]]:
        """A worker that handled `history` (orders offsets 0, 1, …) and what it sent (its
        store written before, as the worker does before outputs leave)."""
        worker = self.start()
        for offset, event in enumerate(history):
            worker.on_message(worker.topics.orders, 0, offset, b"c", orjson.dumps(event))
        worker.flush_store()
        return worker, worker.drain()


def test_an_erasure_lost_in_a_crash_is_sent_again_when_the_partition_is_taken_up():
    tables = _Restartable()
    history = [placed("c1", "o1", at(0)), erased("c1", at(1)), placed("c2", "o2", at(2))]
    worker, sent = tables.processed(history)
    orders = worker.topics.orders
    first = [o for o in sent if o.key == b"c1"]
    # SIGKILL: nothing was sent or committed; the local store holds what the worker wrote
    assert b"c1" not in tables.customers
    [(marker, erased_at)] = tables.erasures.items()
    tables.committed = 1  # the erasure's offset: not committed
    again = tables.start()
    again.on_message(orders, 0, 1, b"c", orjson.dumps(erased("c1", at(1))))  # redelivered
    assert [r for r in tables.resent if r[2] == marker] == [("erasures", 0, marker, erased_at)]
    resent = [o for o in again.drain() if o.key == b"c1"]
    erasure_transitions = [o for o in first if o.topic == worker.topics.transitions and b"erased" in o.value]
    assert erasure_transitions and set(erasure_transitions) <= set(resent)
    assert Output(worker.topics.customer_state, b"c1", None, 0, 0) in resent
    # the customer's tombstone, for the customers table's changelog
    assert Output(worker.customers_changelog, b"c1", None, 0, 0) in resent


def test_a_customer_back_after_an_erasure_both_lost_in_a_crash_keeps_the_new_life():
    tables = _Restartable()
    history = [placed("c1", "o1", at(0)), erased("c1", at(1)), placed("c1", "o2", at(2))]
    tables.processed(history)
    # SIGKILL: the erasure and the order after it not committed
    tables.committed = 1
    again = tables.start()
    for offset, event in enumerate(history[1:], start=1):  # redelivered
        again.on_message(again.topics.orders, 0, offset, b"c", orjson.dumps(event))
    again.flush_store()
    stored = decode_stored(tables.customers[b"c1"]).state
    assert set(stored.orders) == {"o2"}
    sent = [o for o in again.drain() if o.key == b"c1"]
    for topic in (again.customers_changelog, again.topics.customer_state):
        # what the changelog and the state topic say last: the new life, not a tombstone
        assert [o.value for o in sent if o.topic == topic][-1] is not None


def test_a_committed_erasure_keeps_nothing_of_the_customer():
    tables = _Restartable()
    worker = tables.start()
    orders = worker.topics.orders
    worker.on_message(orders, 0, 0, b"c", orjson.dumps(placed("c1", "o1", at(0))))
    worker.on_message(orders, 0, 1, b"c", orjson.dumps(erased("c1", at(1))))
    assert any(b"c1" in value for value in tables.clocks.values())  # until committed
    tables.committed = 2
    worker.on_message(orders, 0, 2, b"c", orjson.dumps(placed("c2", "o2", at(2))))
    assert not any(b"c1" in value for value in [*tables.clocks.values(), *tables.customers])
    tables.committed = 3
    tables.start().on_message(orders, 0, 3, b"c", orjson.dumps(placed("c3", "o3", at(3))))
    assert tables.resent == []


def _segmented_worker(table: dict, clocks: dict, segments: dict, committed: int | None = None) -> Worker:
    config = config_from_mapping({"kafka": {"partitions": 1}, "segments": segments})
    return Worker(
        config,
        table,
        clocks,
        {},
        now_us=lambda: NOW,
        owned_partitions=lambda: [0],
        committed_offset=lambda topic, partition: committed,
    )


def test_segment_changes_go_to_the_changes_topic_and_fresh_ones_to_their_segments_topic():
    worker = _segmented_worker({}, {}, {"buyers": {"orders_over": 0}})
    fresh = placed("c1", "o1", NOW - 1000)
    worker.on_message(worker.topics.orders, 0, 0, b"c1", orjson.dumps(fresh))
    by_topic: dict[str, list[dict]] = {}
    for output in worker.drain():
        if output.value is not None and output.topic != worker.customers_changelog:
            by_topic.setdefault(output.topic, []).append(orjson.loads(output.value))
    changes = worker.topics.segment_changes
    [entered] = by_topic[changes]
    assert (entered["change"], entered["segment"], entered["replayed"]) == (
        "entered_segment",
        "buyers",
        False,
    )
    assert by_topic[f"{changes}.buyers"] == [entered]
    [state] = by_topic[worker.topics.customer_state]
    assert state["segments"] == ["buyers"]


def test_a_worker_with_a_new_segment_re_evaluates_its_customers_as_replayed_changes():
    table: dict = {}
    clocks: dict = {}
    before = _segmented_worker(table, clocks, {"buyers": {"orders_over": 0}})
    for i, customer in enumerate(["c1", "c2"]):
        event = placed(customer, f"o{i}", NOW - 1000 + i, amount=1000 + i * 5000)
        before.on_message(before.topics.orders, 0, i, customer.encode(), orjson.dumps(event))
    before.flush_store()
    before.drain()

    redefined = {"buyers": {"orders_over": 0}, "big": {"spend_over": "50 EUR"}}
    after = _segmented_worker(table, clocks, redefined, committed=2)  # nothing to send again
    late = placed("c3", "o9", NOW - 10)
    after.on_message(after.topics.orders, 0, 2, b"c3", orjson.dumps(late))
    changes = [
        orjson.loads(o.value) for o in after.drain() if o.topic == after.topics.segment_changes and o.value
    ]
    reevaluated = [c for c in changes if c["cause"] == "configuration"]
    assert [(c["customer_id"], c["change"], c["segment"]) for c in reevaluated] == [
        ("c2", "entered_segment", "big")
    ]
    assert reevaluated[0]["replayed"] is True
    # the new customer is evaluated live, and the partition is not re-evaluated again
    assert {(c["customer_id"], c["segment"]) for c in changes if c["cause"] != "configuration"} == {
        ("c3", "buyers")
    }
    again = _segmented_worker(table, clocks, redefined, committed=4)
    again.on_message(again.topics.orders, 0, 3, b"c3", orjson.dumps(late))
    assert [o for o in again.drain() if o.topic == again.topics.segment_changes] == []


def test_a_partition_with_many_late_events_says_so(caplog):
    from stream.worker.runtime import LATE_SHARE_WINDOW

    worker = _worker()
    orders = worker.topics.orders
    newest_first = [
        placed(f"c{i}", f"o{i}", at(0, us=LATE_SHARE_WINDOW - i)) for i in range(LATE_SHARE_WINDOW)
    ]
    for offset, event in enumerate(newest_first):
        worker.on_message(orders, 0, offset, None, orjson.dumps(event))
    [warning] = [r.getMessage() for r in caplog.records if "were late" in r.getMessage()]
    assert warning.startswith(
        f"orders partition 0: {LATE_SHARE_WINDOW - 1} of the last {LATE_SHARE_WINDOW} events"
    )
    registry = worker.metrics.registry
    assert registry.get_sample_value("lifecycle_late_share_warnings_total", {"partition": "0"}) == 1


def _sample(worker: Worker, name: str, labels: dict[str, str]) -> float | None:
    return worker.metrics.registry.get_sample_value(name, labels)


def test_buyers_and_one_timer_outcomes_are_counted_live_and_again_by_a_new_owner():
    tables = _Restartable()
    first = tables.start()
    orders = first.topics.orders
    history = [
        placed("ann", "a1", at(0)),
        placed("ann", "a2", at(5)),  # converted within the window
        placed("bob", "b1", at(1)),
        placed("cid", "c1", at(2)),
        placed("cid", "c2", at(3)),
        cancelled("cid", "c2", at(4)),  # back to one counted order: a one-timer again
        placed("dan", "d1", at(6)),
        cancelled("dan", "d1", at(7)),  # no counted order: not a buyer
    ]
    for offset, event in enumerate(history):
        first.on_message(orders, 0, offset, None, orjson.dumps(event))
    assert _sample(first, "lifecycle_buyers", {"orders": "one"}) == 2  # bob, cid
    assert _sample(first, "lifecycle_buyers", {"orders": "two_or_more"}) == 1  # ann
    # cid converted, then his second order was cancelled: still counted as it happened
    assert _sample(first, "lifecycle_one_timer_outcomes_total", {"outcome": "converted"}) == 2
    first.on_message(first.topics.ticks, 0, 0, None, encode(Tick(at=from_us(at(40)))))
    while first.catching_up(0):
        first.catch_up(0)
    # bob's window closed on day 31, cid's (first order day 2) on day 32
    assert _sample(first, "lifecycle_one_timer_outcomes_total", {"outcome": "lapsed"}) == 2

    first.let_go([0])  # its customers written to the store
    tables.committed = len(history)
    second = tables.start()
    second.take_up([0])  # counted again from the stored customers
    assert _sample(second, "lifecycle_buyers", {"orders": "one"}) == 2
    assert _sample(second, "lifecycle_buyers", {"orders": "two_or_more"}) == 1
    second.let_go([0])
    assert _sample(second, "lifecycle_buyers", {"orders": "one"}) == 0


def _state_gauge(worker: Worker, state: str) -> float | None:
    return worker.metrics.registry.get_sample_value("lifecycle_customers", {"state": state})


def test_a_partition_assigned_back_after_its_revocation_keeps_its_core_without_reading_the_table():
    worker = _worker()
    _order_at(worker, 0)
    _order_at(worker, 1)
    kept = worker.partitions[0]
    worker.let_go([0])
    assert 0 not in worker.partitions and _state_gauge(worker, "one_timer") == 0
    worker.ownership.table.clear()  # a re-read of the table would now find nobody
    worker.regain([0])
    assert worker.partitions[0] is kept
    assert _state_gauge(worker, "one_timer") == 2
    _order_at(worker, 2)
    assert worker.partitions[0] is kept
    assert _state_gauge(worker, "one_timer") == 3


def test_a_partition_not_assigned_back_is_built_again_from_the_table_when_it_returns():
    worker = _worker()
    _order_at(worker, 0)
    parked = worker.partitions[0]
    worker.let_go([0])
    worker.regain([])  # the assignment after the revocation went elsewhere
    assert worker.parked == {}
    _order_at(worker, 1)  # a later assignment: taken up from the table
    assert worker.partitions[0] is not parked
    assert _state_gauge(worker, "one_timer") == 2


def test_a_partition_taken_up_between_revocation_and_assignment_keeps_the_fresh_core():
    worker = _worker()
    _order_at(worker, 0)
    worker.let_go([0])
    _order_at(worker, 1)  # a message still in hand: taken up from the table
    fresh = worker.partitions[0]
    worker.regain([0])
    assert worker.partitions[0] is fresh
    assert _state_gauge(worker, "one_timer") == 2


def test_a_partition_fetched_past_its_first_unprocessed_offset_and_stuck_there_is_read_again():
    worker = _worker()
    _order_at(worker, 0)
    _order_at(worker, 1)
    position = {0: 2}
    assert worker.fetched_past([0], position.get) == {}  # fetched what was processed
    position[0] = 5  # offsets 2-4 fetched, on their way or dropped
    looks = [worker.fetched_past([0], position.get) for _ in range(FETCHED_PAST_LOOKS)]
    assert looks == [{}] * (FETCHED_PAST_LOOKS - 1) + [{0: 2}]
    assert worker.metrics.registry.get_sample_value("lifecycle_orders_rereads_total", {"partition": "0"}) == 1


def test_a_partition_still_processing_what_it_fetched_is_left_alone():
    worker = _worker()
    _order_at(worker, 0)
    position = {0: 9}
    for offset in range(1, 1 + 2 * FETCHED_PAST_LOOKS):
        assert worker.fetched_past([0], position.get) == {}
        _order_at(worker, offset)  # progress between looks


def test_a_partition_taken_up_with_nothing_processed_counts_from_its_committed_offset():
    config = load_config(None, environ={}, overrides={"kafka": {"partitions": 1}})
    worker = Worker(
        config, {}, {}, {}, now_us=lambda: NOW, owned_partitions=lambda: [0], committed_offset=lambda t, p: 0
    )
    worker.take_up([0])
    looks = [worker.fetched_past([0], lambda n: 1) for _ in range(FETCHED_PAST_LOOKS)]
    assert looks[-1] == {0: 0}


def test_a_customer_with_thousands_of_orders_writes_a_bounded_record_and_changelog():
    config = load_config(
        None, environ={}, overrides={"kafka": {"partitions": 1}, "limits": {"orders_kept": 50}}
    )
    customers: dict = {}
    worker = Worker(config, customers, {}, {}, now_us=lambda: NOW, owned_partitions=lambda: [0])
    changelog = worker.customers_changelog
    written: list[int] = []
    for n in range(2000):
        event = placed(
            "heavy",
            f"o{n:05d}",
            at(n / 10),
            event_id=f"e{n:05d}",
            items=[{"sku": "A1", "qty": 1, "unit_minor": 1000}],
        )
        worker.on_message(worker.topics.orders, 0, n, b"heavy", orjson.dumps(event))
        written += [len(o.value) for o in worker.drain() if o.topic == changelog and o.value]
    worker.flush_store()
    stored = decode_stored(customers[b"heavy"] if b"heavy" in customers else customers["heavy"])
    assert stored.state.order_count == 2000
    assert len(stored.state.orders) <= 55
    assert stored.state.folded is not None and stored.state.folded.orders == 2000 - len(stored.state.orders)
    # every changelog record of the last thousand orders is no larger than the largest of
    # orders 500 to 600, once the folded orders' ids remembered are as many as are kept (but
    # for the bytes of the totals' growing integers): bytes per order do not grow with the
    # history (keeping every order, the last were 16 times the first)
    assert len(written) == 2000
    assert max(written[1000:]) <= max(written[500:600]) + 32


def test_a_change_held_out_by_an_experiment_stays_off_its_per_name_topic_also_when_sent_again():
    experiment = {"welcome": {"on": "became_one_timer", "holdout": 0.5, "within": "30d"}}
    config = config_from_mapping({"kafka": {"partitions": 1}, "experiments": experiment})
    now = at(0, us=10_000)  # every event fresh: a held-out one is the only kind kept off
    committed: dict[int, int] = {}
    worker = Worker(
        config,
        {},
        {},
        {},
        now_us=lambda: now,
        owned_partitions=lambda: [0],
        committed_offset=lambda topic, n: committed.get(n),
    )
    orders, per_name = worker.topics.orders, f"{worker.topics.transitions}.became_one_timer"
    for i in range(100):
        worker.on_message(orders, 0, i, None, orjson.dumps(placed(f"c{i}", f"o{i}", at(0, us=i))))
    outputs = worker.drain()
    everything = [orjson.loads(o.value) for o in outputs if o.topic == worker.topics.transitions]
    mailed = {orjson.loads(o.value)["customer_id"] for o in outputs if o.topic == per_name}
    groups = {t["customer_id"]: [e["group"] for e in t["experiments"]] for t in everything}
    assert len(groups) == 100 and all(len(g) == 1 for g in groups.values())
    assert mailed == {c for c, g in groups.items() if g == ["treatment"]}
    assert 20 < len(mailed) < 80

    # a restart with nothing committed sends every outbox again: the holdout still holds
    worker.flush_store()
    restarted = Worker(
        config,
        worker.ownership.table,
        worker.ownership.clocks,
        {},
        now_us=lambda: now,
        owned_partitions=lambda: [0],
        committed_offset=lambda topic, n: committed.get(n),
    )
    restarted.take_up([0])
    again = restarted.drain()
    assert {orjson.loads(o.value)["customer_id"] for o in again if o.topic == per_name} == mailed
    assert len([o for o in again if o.topic == worker.topics.transitions]) == 100


@pytest.mark.parametrize("marker_kept", [True, False], ids=["marker-kept", "marker-lost"])
def test_an_erasure_whose_customer_record_was_lost_in_a_crash_sends_each_transition_once(marker_kept):
    """The customers table and the clocks and erasures tables reach the store and their
    changelogs by two paths: a crash (or a frozen worker's successor) can find the pending
    erasure written and the customer's record from before it. In exactly-once mode, each of
    the customer's transitions must still leave once when the messages come again."""
    tables = _Restartable(guarantee="exactly_once")
    order, erasure = placed("c1", "o1", at(0)), erased("c1", at(1))
    worker, first = tables.processed([order])
    before_erasure = dict(tables.customers)
    erasures_before = dict(tables.erasures)
    for raw in (orjson.dumps(erasure),):
        worker.on_message(worker.topics.orders, 0, 1, b"c", raw)
    worker.flush_store()
    first += worker.drain()
    want = sorted(orjson.loads(o.value)["seq"] for o in first if o.topic == worker.topics.transitions)
    assert want == [1, 2] or len(want) == len(set(want))
    # the crash: the customer's tombstone lost, the pending erasure (clocks table) kept
    tables.customers.clear()
    tables.customers.update(before_erasure)
    if not marker_kept:
        tables.erasures.clear()
        tables.erasures.update(erasures_before)
    tables.committed = 0  # nothing committed
    again = tables.start()
    sent = []
    for offset, event in enumerate([order, erasure]):  # delivered again
        again.on_message(again.topics.orders, 0, offset, b"c", orjson.dumps(event))
        sent += again.drain()
    seqs = sorted(orjson.loads(o.value)["seq"] for o in sent if o.topic == again.topics.transitions)
    assert seqs == want
