"""Customer records in the worker's table: what is written reads back, and so do records
written by earlier versions (a table outlives an upgrade)."""

from __future__ import annotations

import contextlib
import gc

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.lifecycle import Item, State
from stream.lifecycle.customer import OrderRecord, RejectedEvent, new_customer, record_event
from stream.worker.state import (
    Outbox,
    StoredCustomer,
    decode_head,
    decode_stored,
    encode_stored,
    encode_stored_reusing,
)
from tests.helpers import at, cancelled, decoded, placed, refunded


def _customer():
    customer = new_customer("c1", 1_000)
    customer.state = State.ONE_TIMER
    customer.order_count = 1
    return customer


def test_a_record_reads_back_whole_and_by_its_head():
    outboxes = [Outbox("orders", 7, [b"{}"]), Outbox("ticks", 3, [b"{}", b"{}"])]
    raw = encode_stored(StoredCustomer(_customer(), outboxes, 5_000, ("orders", 7), 9))
    stored = decode_stored(raw)
    assert stored.outboxes == outboxes and stored.state.state is State.ONE_TIMER
    head = decode_head(raw)
    assert (head.state.customer_id, head.state.state, head.outboxes) == ("c1", State.ONE_TIMER, outboxes)
    assert (head.partition_clock, head.written_by, head.orders_through) == (5_000, ("orders", 7), 9)


def test_records_written_before_orders_through_was_kept_read_with_none():
    customer = _customer()
    raw = msgspec.msgpack.encode([customer, [], 5_000, ["orders", 7]])
    assert decode_stored(raw).orders_through is None
    assert decode_head(raw).orders_through is None


def test_records_written_with_a_single_outbox_still_read():
    # the layout before outboxes: [state, outbox or nil, partition_clock, written_by]
    customer = _customer()
    for outbox in (["orders", 7, [b"{}"]], None):
        raw = msgspec.msgpack.encode([customer, outbox, 5_000, ["orders", 7]])
        expected = [] if outbox is None else [Outbox("orders", 7, [b"{}"])]
        stored = decode_stored(raw)
        assert stored.outboxes == expected and stored.state == customer
        assert stored.written_by == ("orders", 7)
        head = decode_head(raw)
        assert head.outboxes == expected and head.partition_clock == 5_000


def _with_orders():
    customer = _customer()
    item = Item(sku="SKU-1", qty=2, unit_minor=450, category="home")
    customer.orders = {
        "o1": OrderRecord(
            placed_at=1_000,
            placed_event_id="e1",
            total_minor=900,
            currency="EUR",
            items=[item],
        ),
        "o2": OrderRecord(cancelled=True, refunds={"e3": (300, "EUR")}),
    }
    return customer


def _orders_as_maps(customer):
    """The customer as records before 2026-11-27 held it: each order a map of its fields,
    and one of them without some fields (as if they were added since)."""
    state = msgspec.to_builtins(customer)
    state["orders"] = {
        order_id: {
            name: value
            for name, value in msgspec.structs.asdict(order).items()
            if name not in ("store_id", "cancelled", "refunds") or order_id == "o2"
        }
        for order_id, order in customer.orders.items()
    }
    return state


def test_records_with_orders_as_maps_still_read():
    customer = _with_orders()
    current = msgspec.msgpack.encode([_orders_as_maps(customer), [], 5_000, ["orders", 7], 9])
    single_outbox = msgspec.msgpack.encode([_orders_as_maps(customer), None, 5_000, ["orders", 7]])
    for raw in (current, single_outbox):
        stored = decode_stored(raw)
        assert stored.state == customer and stored.written_by == ("orders", 7)
        assert decode_head(raw).state.order_count == 1
    assert decode_stored(current).orders_through == 9


def test_orders_are_stored_as_arrays():
    customer = _with_orders()
    raw = encode_stored(StoredCustomer(customer, [], 5_000, ("orders", 7), 9))
    assert decode_stored(raw).state == customer
    assert len(raw) < len(msgspec.msgpack.encode([_orders_as_maps(customer), [], 5_000, ["orders", 7], 9]))


order_events = st.lists(
    st.tuples(
        st.sampled_from([placed, placed, cancelled, refunded]),
        st.integers(0, 3),  # which order
        st.integers(0, 30),  # day
        st.sampled_from(["EUR", "USD"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(order_events, st.integers(0, 5))
def test_a_record_encoded_reusing_earlier_orders_has_the_bytes_of_one_encoded_whole(events, stale):
    """Each event's record encoded with the orders encoded after the one before, or after
    one `stale` events earlier, or after none: always the bytes of the whole encoding."""
    customer = new_customer("c1", at(0))
    encodings = [None]
    for maker, order, day, currency in events:
        if maker is refunded:
            event = refunded("c1", f"o{order}", at(day), 300, currency=currency)
        elif maker is placed:
            item = {"sku": f"SKU-{day}", "qty": 1, "unit_minor": 100 + day}
            event = placed("c1", f"o{order}", at(day), currency=currency, items=[item])
        else:
            event = cancelled("c1", f"o{order}", at(day))
        with contextlib.suppress(RejectedEvent):  # a refund in another currency
            record_event(customer, decoded(event), at(day))
        stored = StoredCustomer(customer, [], at(day), ("orders", len(encodings)), len(encodings))
        whole = encode_stored(stored)
        for known in (encodings[-1], encodings[max(0, len(encodings) - 1 - stale)], None):
            raw, now = encode_stored_reusing(stored, known)
            assert raw == whole
            assert decode_stored(raw).state == customer
        encodings.append(now)


def test_a_customer_read_from_the_table_gives_the_garbage_collector_little_to_scan():
    """Records are left out of the cyclic collector (`gc=False`): of a decoded customer, only
    the lists it holds are tracked (each order's items), not its orders, events or maps."""
    customer = new_customer("c1", at(0))
    for number in range(6):
        item = {"sku": "SKU-1", "qty": 1, "unit_minor": 100}
        record_event(customer, decoded(placed("c1", f"o{number}", at(number), items=[item])), at(number))
    raw = encode_stored(StoredCustomer(customer, [Outbox("orders", 7, [b"{}"])], at(6), ("orders", 7), 7))
    # counted after a collection each time: a collection untracks tuples of plain values (a
    # record's `written_by`), and whether one ran in between made this fail now and then
    gc.collect()
    before = len(gc.get_objects())
    kept = [decode_stored(raw) for _ in range(100)]
    gc.collect()
    tracked = (len(gc.get_objects()) - before - 1) / len(kept)  # less the list `kept`
    assert tracked <= len(customer.orders) + 3
