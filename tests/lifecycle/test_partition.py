"""Applying events and moving the partition clock: every rule of docs/lifecycle.md with its instants."""

import copy

from stream.lifecycle import Outcome, Policy, PolicyBook, State, TimeRules, transition_event_id
from stream.lifecycle.instants import DAY_US, MINUTE_US, from_us
from tests.helpers import (
    NOW,
    apply_all,
    at,
    cancelled,
    decoded,
    erased,
    names,
    new_partition,
    placed,
    refunded,
)


def test_first_order_makes_a_one_timer_at_the_order_instant():
    p = new_partition()
    [t] = apply_all(p, [placed("c1", "o1", at(0))])
    assert (t.transition, t.from_state, t.to_state, t.seq) == ("became_one_timer", "prospect", "one_timer", 1)
    assert t.occurred_at == from_us(at(0))
    assert t.cause == "order.placed"


def test_one_timer_goes_inactive_at_exact_deadline():
    p = new_partition()
    apply_all(p, [placed("c1", "o1", at(0))])
    assert p.advance(at(30, us=-1), NOW) == []
    [t] = p.advance(at(30), NOW)
    assert t.transition == "went_inactive"
    assert t.occurred_at == from_us(at(30))
    assert t.cause == "deadline" and t.cause_event_id is None


def test_second_order_within_window_is_the_second_purchase_conversion():
    p = new_partition()
    out = apply_all(p, [placed("c1", "o1", at(0)), placed("c1", "o2", at(29))])
    assert names(out) == ["became_one_timer", "became_repeat"]


def test_clock_jump_fires_each_deadline_in_time_order():
    p = new_partition()
    apply_all(p, [placed("c1", "o1", at(0)), placed("c1", "o2", at(1))])
    out = p.advance(at(1000), NOW)
    assert names(out) == ["went_at_risk", "went_inactive", "churned"]
    assert [t.occurred_at for t in out] == [from_us(at(61)), from_us(at(91)), from_us(at(366))]
    assert [t.seq for t in out] == [3, 4, 5]


def test_one_timer_churns_a_year_after_its_order():
    p = new_partition()
    apply_all(p, [placed("c1", "o1", at(0))])
    out = p.advance(at(400), NOW)
    assert names(out) == ["went_inactive", "churned"]
    assert out[1].occurred_at == from_us(at(365))


def test_new_order_recovers_at_risk_and_reactivates_inactive_and_churned():
    p = new_partition()
    events = [placed("a", "a1", at(0)), placed("a", "a2", at(1)), placed("a", "a3", at(70))]
    assert names(apply_all(p, events))[-2:] == ["went_at_risk", "recovered"]
    p = new_partition()
    out = apply_all(p, [placed("b", "b1", at(0)), placed("b", "b2", at(40))])
    assert names(out) == ["became_one_timer", "went_inactive", "reactivated"]
    assert out[-1].to_state is State.REPEAT
    p = new_partition()
    out = apply_all(p, [placed("c", "c1", at(0)), placed("c", "c2", at(500))])
    assert names(out) == ["became_one_timer", "went_inactive", "churned", "reactivated"]


def test_deadlines_of_every_customer_fire_before_a_later_event():
    p = new_partition()
    apply_all(p, [placed("a", "a1", at(0)), placed("b", "b1", at(10))])
    out = apply_all(p, [placed("z", "z1", at(45))])
    assert [(t.customer_id, t.transition) for t in out] == [
        ("a", "went_inactive"),
        ("b", "went_inactive"),
        ("z", "became_one_timer"),
    ]


def test_event_at_a_deadline_instant_comes_after_the_deadline():
    p = new_partition()
    out = apply_all(p, [placed("c1", "o1", at(0)), placed("c1", "o2", at(30))])
    assert names(out) == ["became_one_timer", "went_inactive", "reactivated"]
    assert out[1].occurred_at == out[2].occurred_at == from_us(at(30))


def test_cancelled_order_no_longer_counts():
    p = new_partition()
    out = apply_all(p, [placed("c1", "o1", at(0)), cancelled("c1", "o1", at(1))])
    assert names(out) == ["became_one_timer", "one_timer_to_prospect"]
    assert out[1].occurred_at == from_us(at(1))
    assert p.customers["c1"].deadline is None


def test_cancellation_arriving_before_its_order_means_the_order_never_counts():
    p = new_partition()
    out = apply_all(p, [cancelled("c1", "o1", at(0)), placed("c1", "o1", at(0))])
    assert out == []
    assert p.customers["c1"].state is State.PROSPECT


def test_full_refund_uncounts_and_partial_refund_reduces_spend():
    p = new_partition()
    out = apply_all(
        p, [placed("c1", "o1", at(0), 1000), placed("c1", "o2", at(1), 500), refunded("c1", "o2", at(2), 200)]
    )
    assert names(out) == ["became_one_timer", "became_repeat"]
    assert p.customers["c1"].spend == {"EUR": 1300}
    out = apply_all(p, [refunded("c1", "o2", at(3), 300)])
    assert names(out) == ["repeat_to_one_timer"]
    assert out[0].customer.spend == {"EUR": 1000}


def test_refund_in_another_currency_is_rejected_with_a_reason():
    p = new_partition()
    apply_all(p, [placed("c1", "o1", at(0), currency="EUR")])
    result = p.apply(decoded(refunded("c1", "o1", at(1), 100, currency="USD")), NOW)
    assert result.outcome is Outcome.REJECTED
    assert "USD" in result.reason and "EUR" in result.reason


def test_same_event_id_twice_changes_nothing():
    p = new_partition()
    refund = refunded("c1", "o1", at(1), 400)
    apply_all(p, [placed("c1", "o1", at(0), 1000), refund])
    before = p.customers["c1"].spend.copy()
    result = p.apply(decoded(refund), NOW)
    assert result.outcome is Outcome.DUPLICATE
    assert p.customers["c1"].spend == before == {"EUR": 600}


def test_same_order_placed_twice_counts_once():
    p = new_partition()
    out = apply_all(p, [placed("c1", "o1", at(0)), placed("c1", "o1", at(0, us=5), event_id="again")])
    assert names(out) == ["became_one_timer"]
    assert p.customers["c1"].order_count == 1


def test_late_event_is_settled_at_the_partition_clock():
    p = new_partition()
    apply_all(p, [placed("a", "a1", at(50))])
    result = p.apply(decoded(placed("b", "b1", at(45))), NOW)
    assert result.outcome is Outcome.LATE
    [t] = result.changes
    assert t.transition == "became_one_timer"
    assert t.occurred_at == from_us(at(50))
    # the one-timer window still runs from the order itself
    assert p.customers["b"].deadline == at(75)


def test_late_event_past_its_window_moves_straight_to_the_state_at_the_clock():
    p = new_partition()
    apply_all(p, [placed("a", "a1", at(100))])
    [t] = p.apply(decoded(placed("b", "b1", at(10))), NOW).changes
    assert (t.transition, t.occurred_at) == ("prospect_to_inactive", from_us(at(100)))


def test_event_too_far_in_the_future_is_rejected_and_moves_no_clock():
    p = new_partition(rules=TimeRules(max_future_skew=5 * MINUTE_US))
    now = at(0)
    ok = p.apply(decoded(placed("c1", "o1", now + 5 * MINUTE_US)), now)
    assert ok.outcome is Outcome.APPLIED
    bad = p.apply(decoded(placed("c2", "o2", now + 5 * MINUTE_US + 1)), now)
    assert bad.outcome is Outcome.REJECTED and "max_future_skew" in bad.reason
    assert p.clock_us == now + 5 * MINUTE_US


def test_clock_never_goes_back():
    p = new_partition()
    apply_all(p, [placed("c1", "o1", at(10))])
    assert p.advance(at(5), NOW) == []
    assert p.clock_us == at(10)


def test_erasure_forgets_the_customer_and_a_returning_customer_gets_new_ids():
    p = new_partition()
    first = apply_all(p, [placed("c1", "o1", at(0), coupon="HELLO")])
    [gone] = apply_all(p, [erased("c1", at(1))])
    assert gone.transition == "one_timer_to_prospect" and gone.cause == "customer.erased"
    assert gone.customer.order_count == 0 and gone.customer.first_order is None
    assert "c1" not in p.customers
    assert p.advance(at(100), NOW) == []
    [again] = apply_all(p, [placed("c1", "o9", at(200))])
    assert again.seq == 1 and again.event_id != first[0].event_id


def test_transition_ids_derive_from_customer_creation_and_seq():
    p = new_partition()
    out = apply_all(p, [placed("c1", "o1", at(3)), placed("c1", "o2", at(4))])
    assert [t.event_id for t in out] == [transition_event_id("c1", at(3), s) for s in (1, 2)]


def test_replayed_when_stale_at_detection_or_when_rebuilding():
    p = new_partition(rules=TimeRules(stale_after=DAY_US))
    [fresh] = p.apply(decoded(placed("a", "a1", at(0))), at(1)).changes
    [stale] = p.apply(decoded(placed("b", "b1", at(0))), at(1, us=1)).changes
    assert (fresh.replayed, stale.replayed) == (False, True)
    rebuild = new_partition(rebuilding=True)
    [t] = rebuild.apply(decoded(placed("a", "a1", at(0))), at(0)).changes
    assert t.replayed is True


def test_snapshot_carries_what_the_email_needs():
    p = new_partition()
    items = [{"sku": "S1", "qty": 2, "unit_minor": 500, "category": "tea"}]
    apply_all(
        p,
        [
            placed(
                "c1",
                "o1",
                at(0),
                1000,
                items=items,
                channel="app",
                payment_method="card",
                coupon="WELCOME10",
                store_id="eu",
            ),
            placed("c1", "o2", at(5), 700, currency="USD"),
        ],
    )
    [t] = p.advance(at(65), NOW)
    snap = t.customer
    assert snap.order_count == 2
    assert snap.first_order_at == from_us(at(0)) and snap.last_order_at == from_us(at(5))
    assert snap.spend == {"EUR": 1000, "USD": 700}
    assert snap.first_order.items[0].sku == "S1" and snap.first_order.coupon == "WELCOME10"
    assert (snap.first_order.channel, snap.first_order.payment_method) == ("app", "card")
    assert snap.days_since_last_order == 60


def test_each_store_has_its_own_policy():
    book = PolicyBook(stores={"fast": Policy(one_timer_window=10 * DAY_US)})
    p = new_partition(policies=book)
    apply_all(p, [placed("a", "a1", at(0), store_id="fast"), placed("b", "b1", at(0), store_id="slow")])
    out = p.advance(at(20), NOW)
    assert [(t.customer_id, t.occurred_at) for t in out] == [("a", from_us(at(10)))]


def test_seq_has_no_gaps_and_occurred_at_never_decreases_per_customer():
    p = new_partition()
    events = [
        placed("c1", "o1", at(0)),
        placed("c1", "o2", at(2)),
        cancelled("c1", "o2", at(3)),
        placed("c1", "o3", at(1)),
        placed("c1", "o4", at(200)),
    ]
    out = apply_all(p, events) + p.advance(at(900), NOW)
    assert [t.seq for t in out] == list(range(1, len(out) + 1))
    assert [t.occurred_at for t in out] == sorted(t.occurred_at for t in out)


def test_deadline_index_rebuilt_from_stored_states_fires_the_same():
    p = new_partition()
    apply_all(p, [placed("a", "a1", at(0)), placed("b", "b1", at(3))])
    restored = new_partition()
    restored.customers.update(p.customers)
    restored.clock_us = p.clock_us
    restored.rebuild_deadline_index()
    assert [(t.customer_id, t.occurred_at) for t in restored.advance(at(40), NOW)] == [
        ("a", from_us(at(30))),
        ("b", from_us(at(33))),
    ]


def test_events_redelivered_after_an_erasure_do_not_bring_the_customer_back():
    p = new_partition()
    order = placed("c1", "o1", at(0))
    apply_all(p, [order, placed("x", "x1", at(5)), erased("c1", at(6))])
    result = p.apply(decoded(order), NOW)
    assert result.outcome is Outcome.ERASED and result.changes == []
    assert "c1" not in p.customers
    assert all("c1" not in key for key in p.erasures)  # only a one-way hash is kept
    [back] = apply_all(p, [placed("c1", "o2", at(7))])
    assert back.transition == "became_one_timer" and back.seq == 1


def test_an_erasure_redelivered_after_the_clock_moved_on_is_a_duplicate_and_keeps_its_instant():
    p = new_partition()
    erasure = erased("c1", at(6))
    apply_all(p, [placed("c1", "o1", at(0)), erasure, placed("x", "x1", at(9))])
    marker = dict(p.erasures)
    again = p.apply(decoded(erasure), NOW)
    assert again.outcome is Outcome.DUPLICATE and not again.erased
    assert p.erasures == marker  # not moved to the clock (day 9)
    # an order of day 8 is of a new life, as it was before the redelivery
    [back] = apply_all(p, [placed("c1", "o2", at(8))])
    assert back.transition == "became_one_timer"


def test_an_erasure_redelivered_after_the_customer_came_back_leaves_the_new_life_alone():
    p = new_partition()
    erasure = erased("c1", at(6))
    apply_all(p, [placed("c1", "o1", at(0)), erasure, placed("c1", "o2", at(8))])
    again = p.apply(decoded(erasure), NOW)
    assert again.outcome is Outcome.DUPLICATE and again.changes == [] and not again.erased
    assert set(p.customers["c1"].orders) == {"o2"}


def test_an_erasure_redelivered_over_the_erased_life_put_back_erases_it_at_the_markers_instant():
    # a store restored from before the erasure holds the erased life again
    p = new_partition()
    erasure = erased("c1", at(6))
    apply_all(p, [placed("c1", "o1", at(0))])
    erased_life = copy.deepcopy(p.customers["c1"])
    apply_all(p, [erasure, placed("x", "x1", at(9))])
    marker = dict(p.erasures)
    p.customers["c1"] = erased_life
    again = p.apply(decoded(erasure), NOW)
    assert again.outcome is Outcome.APPLIED and again.erased
    assert [t.transition for t in again.changes] == ["one_timer_to_prospect"]
    assert "c1" not in p.customers
    assert p.erasures == marker  # not moved to the clock (day 9): a life begun on day 8 stays
    [back] = apply_all(p, [placed("c1", "o2", at(8))])
    assert back.transition == "became_one_timer"


def test_a_bounded_advance_stops_after_that_many_deadlines_with_the_clock_at_the_last():
    p = new_partition()
    apply_all(p, [placed(f"c{i}", f"o{i}", at(0, us=i)) for i in range(5)])
    first = p.advance(at(100), NOW, max_deadlines=2)
    assert [t.customer_id for t in first] == ["c0", "c1"]
    assert p.clock_us == at(30, us=1)
    rest = p.advance(at(100), NOW, max_deadlines=10)
    assert [t.customer_id for t in rest] == ["c2", "c3", "c4"]
    assert p.clock_us == at(100)


def test_a_bounded_advance_never_splits_one_instant():
    p = new_partition()
    apply_all(p, [placed(f"c{i}", f"o{i}", at(0)) for i in range(4)])
    fired = p.advance(at(400), NOW, max_deadlines=1)  # went inactive at day 30, churn at 365
    assert [t.transition for t in fired] == ["went_inactive"] * 4 and p.clock_us == at(30)
