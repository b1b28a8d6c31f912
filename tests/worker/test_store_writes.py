"""The worker writes its customers to the local store together, not one by one
(`TableCustomers.flush`), and never lets anything show a write the store does not hold: not
an output (tests/kafka/test_batches.py: the flush runs before any batch is handed over), not
another table's entry, not a partition let go."""

from __future__ import annotations

from typing import Any

import orjson

from stream.config import load_config
from stream.lifecycle.customer import new_customer
from stream.worker.customer_store import UNWRITTEN_LIMIT, TableCustomers
from stream.worker.runtime import Worker
from stream.worker.state import StoredCustomer, decode_stored, encode_stored
from tests.helpers import NOW, at, erased, placed


class WatchedTable(dict[bytes, bytes]):
    """A table that notes, at each write, which customers the customers' store held."""

    def __init__(self, customers: dict[bytes, bytes]) -> None:
        super().__init__()
        self.customers = customers
        self.seen_at_writes: list[set[bytes]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.seen_at_writes.append(set(self.customers))
        super().__setitem__(key, value)

    def pop(self, key: bytes, default: Any = None) -> Any:
        self.seen_at_writes.append(set(self.customers))
        return super().pop(key, default)


def _worker(customers: dict, clocks: dict, erasures: dict, decoded_customers: int = 0) -> Worker:
    overrides = {"kafka": {"partitions": 1}, "worker": {"decoded_customers": decoded_customers}}
    config = load_config(None, environ={}, overrides=overrides)
    return Worker(config, customers, clocks, erasures, now_us=lambda: NOW, owned_partitions=lambda: [0])


def _send(worker: Worker, offset: int, event: dict) -> None:
    assert worker.on_message(worker.topics.orders, 0, offset, b"c", orjson.dumps(event)) is None


def test_customers_written_are_read_back_before_they_reach_the_store_and_then_reach_it_together():
    store: dict[bytes, bytes] = {}
    worker = _worker(store, {}, {})  # nothing kept decoded: every read goes to the table
    _send(worker, 0, placed("c1", "o1", at(0)))
    _send(worker, 1, placed("c2", "o2", at(1)))
    _send(worker, 2, placed("c1", "o3", at(2)))  # c1 read back from what is not yet written
    assert store == {}
    worker.flush_store()
    changelog = {o.key: o.value for o in worker.drain() if o.topic == worker.customers_changelog}
    assert store == changelog
    assert decode_stored(store[b"c1"]).state.order_count == 2


def test_the_customers_are_in_the_store_before_another_table_is_written():
    store: dict[bytes, bytes] = {}
    clocks, erasures = WatchedTable(store), WatchedTable(store)
    worker = _worker(store, clocks, erasures)
    _send(worker, 0, placed("c1", "o1", at(0)))
    _send(worker, 1, placed("c1", "o1", at(0)))  # a duplicate: writes its offset alone, a clock entry
    assert clocks.seen_at_writes and clocks.seen_at_writes[0] == {b"c1"}
    _send(worker, 2, placed("c2", "o2", at(1)))
    _send(worker, 3, erased("c1", at(2)))  # the erasure marker, then the pending erasure
    assert erasures.seen_at_writes == [{b"c1", b"c2"}]
    assert clocks.seen_at_writes[-1] == {b"c2"}  # the pending erasure, after c1's deletion


def test_a_partition_let_go_leaves_its_customers_in_the_store():
    store: dict[bytes, bytes] = {}
    worker = _worker(store, {}, {})
    _send(worker, 0, placed("c1", "o1", at(0)))
    worker.let_go([0])
    assert set(store) == {b"c1"}


def test_customers_are_written_at_once_when_too_many_wait():
    store: dict[bytes, bytes] = {}
    customers = TableCustomers(store, 0, lambda key, value: None)
    for number in range(UNWRITTEN_LIMIT):
        customer_id = f"c{number}"
        customers[customer_id] = new_customer(customer_id, 1_000)
        customers.write_back({}, 1_000, ("orders", number), lambda outbox: False, number)
    assert len(store) == UNWRITTEN_LIMIT
    first = StoredCustomer(new_customer("c0", 1_000), [], 1_000, ("orders", 0), 0)
    assert store[b"c0"] == encode_stored(first)
