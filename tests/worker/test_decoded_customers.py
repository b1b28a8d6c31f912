"""Customers the worker keeps decoded (`worker.decoded_customers`): what it reads from memory
is what the store holds, so its outputs and its table are those of a worker reading every
customer from the store."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stream.config import load_config
from stream.inputs.messages import Tick, encode
from stream.lifecycle import State
from stream.lifecycle.customer import new_customer
from stream.lifecycle.instants import from_us
from stream.worker.customer_store import TableCustomers
from stream.worker.runtime import Output, Worker
from stream.worker.state import StoredCustomer, encode_stored
from tests.helpers import NOW, at, cancelled, erased, placed, refunded


class CountingStore(dict[bytes, bytes]):
    """A table's local store that counts its reads."""

    reads = 0

    def get(self, key: bytes, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)


def _worker(decoded_customers: int, table: dict[bytes, bytes]) -> Worker:
    overrides = {"kafka": {"partitions": 1}, "worker": {"decoded_customers": decoded_customers}}
    config = load_config(None, environ={}, overrides=overrides)
    return Worker(config, table, {}, {}, now_us=lambda: NOW, owned_partitions=lambda: [0])


def _feed(worker: Worker, messages: list[tuple[str, bytes]]) -> list[Output]:
    outputs = []
    offsets = {worker.topics.ticks: 0, worker.topics.orders: 0}
    for kind, raw in messages:
        topic = worker.topics.ticks if kind == "tick" else worker.topics.orders
        assert worker.on_message(topic, 0, offsets[topic], None, raw) is None
        offsets[topic] += 1
        while worker.catching_up(0):
            worker.catch_up(0)
        worker.flush_store()  # as before outputs leave
        outputs += worker.drain()
    return outputs


def _message(kind: str, customer: int, day: int, order: int, currency: str) -> tuple[str, bytes]:
    cid, oid, when = f"c{customer}", f"o{customer}-{order}", at(day)
    if kind == "tick":
        return kind, encode(Tick(at=from_us(at(day))))
    event = {
        "placed": lambda: placed(cid, oid, when, currency=currency),
        "cancelled": lambda: cancelled(cid, oid, when),
        # in dollars: a refund of a euro order is rejected (until 2026-11-27, after the core
        # had begun changing the customer it read)
        "refunded": lambda: refunded(cid, oid, when, 300, currency="USD"),
        "erased": lambda: erased(cid, when),
    }[kind]()
    return kind, orjson.dumps(event)


messages = st.lists(
    st.builds(
        _message,
        st.sampled_from(["placed", "placed", "cancelled", "refunded", "erased", "tick"]),
        st.integers(0, 2),
        st.integers(0, 400),
        st.integers(0, 1),
        st.sampled_from(["EUR", "USD"]),
    ),
    min_size=5,
    max_size=40,
)


# the case hypothesis found only now and then when the core changed a customer in place before
# rejecting a refund: the customer written back by a later event
REFUND_REJECTED_THEN_A_WRITE = [
    _message("placed", 0, 0, 0, "EUR"),
    _message("refunded", 0, 1, 0, "EUR"),
    _message("placed", 0, 2, 1, "EUR"),
]


@settings(max_examples=150, deadline=None)
@given(messages)
@example(REFUND_REJECTED_THEN_A_WRITE)
def test_a_worker_keeping_customers_decoded_sends_and_stores_what_one_reading_the_store_does(messages):
    reading, keeping_few, keeping_all = CountingStore(), CountingStore(), CountingStore()
    expected = _feed(_worker(0, reading), messages)
    assert _feed(_worker(2, keeping_few), messages) == expected
    assert _feed(_worker(1000, keeping_all), messages) == expected
    assert keeping_few == reading and keeping_all == reading
    assert keeping_all.reads <= keeping_few.reads <= reading.reads


def test_a_customer_written_is_read_again_from_memory_and_the_least_recent_make_room():
    store = CountingStore()
    worker = _worker(2, store)
    customers = ["c1", "c2", "c3", "c3", "c2", "c1"]  # the two written last, then the first
    orders = [orjson.dumps(placed(c, f"{c}-{i}", at(i))) for i, c in enumerate(customers)]
    for offset in range(3):
        worker.on_message(worker.topics.orders, 0, offset, None, orders[offset])
    worker.flush_store()
    reads = store.reads
    for offset in (3, 4):
        worker.on_message(worker.topics.orders, 0, offset, None, orders[offset])
    assert store.reads == reads
    worker.on_message(worker.topics.orders, 0, 5, None, orders[5])
    assert store.reads == reads + 1
    reads = worker.metrics.registry.get_sample_value
    assert reads("lifecycle_customer_reads_total", {"source": "memory"}) == 2
    assert reads("lifecycle_customer_reads_total", {"source": "store"}) == 3 + 1  # the new ones, c1
    assert worker.partitions[0].core.customers["c1"].order_count == 2


def test_a_customer_read_and_not_written_back_is_read_again_from_the_store():
    store = CountingStore()
    customer = new_customer("c1", 1_000)
    store[b"c1"] = encode_stored(StoredCustomer(customer, [], 1_000, ("orders", 0), 0))
    customers = TableCustomers(store, 0, lambda key, value: None, keep_decoded=10)
    customers["c1"].state = State.REPEAT
    customers.write_back({}, 2_000, ("orders", 1), lambda outbox: False, 1)
    customers.flush()
    customers["c1"] = customers["c1"]  # read from the store, written back: kept
    customers.write_back({}, 2_000, ("orders", 2), lambda outbox: False, 2)
    customers.flush()
    reads = store.reads
    changed = customers["c1"]
    assert store.reads == reads
    changed.state = State.REPEAT  # as a core that then rejects the event
    customers.write_back({}, 2_000, ("orders", 3), lambda outbox: False, 3)
    assert customers["c1"].state is State.PROSPECT
    assert store.reads == reads + 1
