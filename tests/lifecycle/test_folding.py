"""Customers with many orders (docs/lifecycle.md, "Customers with many orders"): the oldest
orders folded into totals, a bounded number kept, the same transitions, segment changes and
standing as a customer keeping every order, and an event that would need a folded order
rejected with the reason."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.config import config_from_mapping
from stream.lifecycle import Outcome, Partition
from stream.lifecycle.instants import DAY_US, HOUR_US
from tests.helpers import NOW, at, cancelled, decoded, placed, refunded

KEPT = 30
# With orders of 100 EUR or more and 30 kept, the kept orders reach every threshold below
# whenever older orders are still in a window: the rule (docs/lifecycle.md) is that windows
# read the kept orders, and a shop's thresholds are far below what 1,000 orders add up to.
EVERY_ORDER = 10**9
PRESET_LIKE = config_from_mapping(
    {
        "segments": {
            "frequent": {"orders_over": 3, "orders_within": "365d"},
            "big": {"spend_over": "500 EUR", "spend_within": "365d"},
            "a": {"spend_over": "1000 EUR", "spend_within": "365d"},
            "new": {"first_order_within": "60d"},
            "lapsed": {"no_order_within": "180d"},
            "ever_a1": {"bought": ["sku:A1"]},
        },
        "classes": {"order": ["a", "big", "frequent"]},
    }
).segments
ITEM = [{"sku": "A1", "qty": 1, "unit_minor": 10_000, "category": "shoes"}]


def _partition(orders_kept: int) -> Partition:
    return Partition({}, segments=PRESET_LIKE, orders_kept=orders_kept)


def _outcomes(partition: Partition, events: list[dict[str, Any]]) -> list[tuple]:
    """Every event's outcome and the changes it gave, as comparable values."""
    out = []
    for event in events:
        result = partition.apply(decoded(event), NOW)
        out.append((result.outcome, result.reason_code, [_comparable(c) for c in result.changes]))
    return out


def _comparable(change: Any) -> tuple:
    customer = change.customer
    return (type(change).__name__, change.event_id, change.occurred_at, customer.order_count, customer.spend)


def _standing(partition: Partition) -> dict[str, tuple]:
    return {
        cid: (
            c.state,
            c.seq,
            c.order_count,
            c.first_order_at,
            c.last_order_at,
            c.spend,
            c.segments,
            c.deadline,
        )
        for cid, c in partition.customers.items()
    }


@st.composite
def heavy_histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A customer with many orders in time order: redelivered, cancelled and refunded soon
    after, as a shop's stream has them; none touches an order more than KEPT orders back."""
    events: list[dict[str, Any]] = []
    when = at(0)
    placed_ids: list[str] = []
    for number in range(draw(st.integers(KEPT, 8 * KEPT))):
        when += draw(st.integers(1, 20 * DAY_US))
        order = f"o{number}"
        amount = draw(st.sampled_from([10_000, 25_000, 40_000]))
        event = placed(
            "heavy", order, when, amount, event_id=f"p{number}", items=ITEM if number % 7 == 0 else None
        )
        events.append(event)
        placed_ids.append(order)
        roll = draw(st.integers(0, 9))
        recent = draw(st.sampled_from(placed_ids[-KEPT // 2 :]))
        if roll == 0:
            events.append(event)  # redelivered
        elif roll == 1 and recent != "o0":
            events.append(cancelled("heavy", recent, when + HOUR_US, event_id=f"c{number}"))
        elif roll == 2 and recent != "o0":
            amount = draw(st.sampled_from([5_000, 40_000]))
            events.append(refunded("heavy", recent, when + HOUR_US, amount, event_id=f"r{number}"))
    return events


@settings(max_examples=60, deadline=None)
@given(heavy_histories(), st.integers(0, 400))
def test_a_customer_folding_old_orders_gets_what_one_keeping_every_order_gets(events, later_days):
    folding, keeping = _partition(KEPT), _partition(EVERY_ORDER)
    assert _outcomes(folding, events) == _outcomes(keeping, events)
    held = folding.customers["heavy"]
    assert len(held.orders) <= KEPT + KEPT // 10
    if len(keeping.customers["heavy"].orders) > KEPT + KEPT // 10:
        assert held.folded is not None
    end = (folding.clock_us or 0) + later_days * DAY_US
    assert [_comparable(c) for c in folding.advance(end, NOW)] == [
        _comparable(c) for c in keeping.advance(end, NOW)
    ]
    assert _standing(folding) == _standing(keeping)


def _folded_customer() -> tuple[Partition, list[dict[str, Any]]]:
    partition = _partition(KEPT)
    events = [placed("h", f"o{n}", at(n), 10_000, event_id=f"p{n}") for n in range(3 * KEPT)]
    _outcomes(partition, events)
    assert partition.customers["h"].folded is not None
    return partition, events


def _rejected(partition: Partition, event: dict[str, Any]) -> str:
    before = _standing(partition)
    result = partition.apply(decoded(event), NOW)
    assert (result.outcome, result.reason_code, result.changes) == (Outcome.REJECTED, "folded", [])
    assert _standing(partition) == before
    assert result.reason
    return result.reason


def test_a_folded_order_sent_again_is_rejected_not_counted_twice():
    partition, events = _folded_customer()
    reason = _rejected(partition, events[5])
    assert "o5 is placed at or before" in reason and "limits.orders_kept = 30" in reason


def test_a_cancellation_or_refund_of_an_order_not_kept_is_rejected():
    partition, _ = _folded_customer()
    assert "not among the customer's kept orders" in _rejected(partition, cancelled("h", "o5", at(90)))
    assert "not among the customer's kept orders" in _rejected(partition, refunded("h", "o6", at(90), 100))


def test_the_first_order_of_a_customer_with_folded_orders_cannot_stop_counting():
    partition, _ = _folded_customer()
    assert partition.customers["h"].first_order_id == "o0"
    assert "is the customer's first" in _rejected(partition, cancelled("h", "o0", at(90)))
    assert "is the customer's first" in _rejected(partition, refunded("h", "o0", at(90), 10_000))
    partial = partition.apply(decoded(refunded("h", "o0", at(90), 1_000)), NOW)
    assert partial.outcome is Outcome.APPLIED
    assert partition.customers["h"].spend == {"EUR": 3 * KEPT * 10_000 - 1_000}


def test_a_new_order_after_the_folded_ones_counts_and_a_kept_one_can_be_cancelled():
    partition, _ = _folded_customer()
    count = partition.customers["h"].order_count
    assert partition.apply(decoded(placed("h", "new", at(91), 10_000)), NOW).outcome is Outcome.APPLIED
    assert (
        partition.apply(decoded(cancelled("h", f"o{3 * KEPT - 1}", at(92))), NOW).outcome is Outcome.APPLIED
    )
    assert partition.customers["h"].order_count == count


def test_cancellations_waiting_for_their_orders_are_bounded():
    partition = _partition(KEPT)
    outcomes = [partition.apply(decoded(cancelled("w", f"o{n}", at(n))), NOW) for n in range(KEPT + 3)]
    assert [o.outcome for o in outcomes] == [Outcome.APPLIED] * KEPT + [Outcome.REJECTED] * 3
    assert "the most kept" in (outcomes[-1].reason or "")
    assert len(partition.customers["w"].orders) == KEPT


def test_a_folded_order_placed_again_later_is_rejected_not_counted_twice():
    partition, _ = _folded_customer()
    again = placed("h", "o5", at(90), 10_000, event_id="again")  # later than every folded order
    assert "is one of the customer's" in _rejected(partition, again)


def test_a_placement_that_would_make_the_first_order_stop_counting_is_rejected():
    partition, _ = _folded_customer()
    assert partition.apply(decoded(refunded("h", "o0", at(90), 6_000)), NOW).outcome is Outcome.APPLIED
    # placed earlier, for less than what was refunded: it would replace the first order's total
    earlier = placed("h", "o0", at(-1), 5_000, event_id="earlier")
    assert "is the customer's first" in _rejected(partition, earlier)


def test_an_order_keeps_a_bounded_number_of_refunds():
    partition = Partition({}, refunds_kept=3)
    partition.apply(decoded(placed("r", "o1", at(0), 10_000)), NOW)
    outcomes = [
        partition.apply(decoded(refunded("r", "o1", at(1), 0, event_id=f"r{n}")), NOW) for n in range(5)
    ]
    assert [o.outcome for o in outcomes] == [Outcome.APPLIED] * 3 + [Outcome.REJECTED] * 2
    assert outcomes[-1].reason_code == "too_many_refunds" and "limits.refunds_per_order = 3" in (
        outcomes[-1].reason or ""
    )
    again = partition.apply(decoded(refunded("r", "o1", at(1), 0, event_id="r0")), NOW)
    assert again.outcome is Outcome.DUPLICATE  # a refund kept, sent again, is still known


def test_orders_of_many_items_fold_sooner_so_the_record_stays_small():
    partition = _partition(KEPT)
    basket = [{"sku": f"S{n}", "qty": 1, "unit_minor": 100} for n in range(60)]
    for n in range(12):
        partition.apply(decoded(placed("w", f"o{n}", at(n), 6_000, event_id=f"p{n}", items=basket)), NOW)
    customer = partition.customers["w"]
    items = sum(len(order.items or ()) for order in customer.orders.values())
    assert items <= 8 * KEPT * 1.1
    assert customer.folded is not None and customer.order_count == 12
