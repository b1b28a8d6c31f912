"""Triggers in the core (docs/triggers.md): arming, re-arming, `unless` at the boundary
instants, `once`, `only_state` read after the transitions due at the firing instant, late
`on` events, erasure, and what a firing carries."""

from __future__ import annotations

from typing import Any

import pytest

from stream.config import ConfigError, config_from_mapping
from stream.lifecycle import Partition, Transition
from stream.lifecycle.instants import HOUR_US, format_rfc3339, to_us
from stream.lifecycle.transitions import Change, SegmentChange, TriggerFired
from tests.helpers import NOW, at, cancelled, decoded, engaged, erased, placed, refunded, signed_up

CART = {"cart_abandoned": {"on": "engaged:added_to_cart", "after": "1h", "unless": ["order"]}}


def partition(triggers: dict[str, dict[str, Any]], **sections: Any) -> Partition:
    config = config_from_mapping({**sections, "triggers": triggers})
    return Partition(
        {},
        config.policy_book(),
        segments=config.segments,
        triggers=config.triggers,
        experiments=config.experiments,
    )


def run(p: Partition, events: list[dict[str, Any]], until: int | None = None) -> list[Change]:
    out: list[Change] = []
    for event in events:
        out += p.apply(decoded(event), NOW).changes
    if until is not None:
        out += p.advance(until, NOW)
    return out


def firings(changes: list[Change]) -> list[TriggerFired]:
    return [c for c in changes if isinstance(c, TriggerFired)]


def fired_at(changes: list[Change]) -> list[tuple[str, str, int]]:
    return [(f.trigger, f.customer_id, to_us(f.occurred_at)) for f in firings(changes)]


def test_an_abandoned_cart_fires_after_the_delay_with_the_carts_items_and_contact():
    p = partition(CART)
    items = [{"sku": "SHOE-1", "category": "shoes", "qty": 1, "unit_minor": 5000}]
    cart = engaged("c1", "added_to_cart", at(0), event_id="e-cart", items=items, cart_id="k1")
    changes = run(p, [signed_up("c1", at(-1), email="a@example.com"), cart], until=at(1))
    [firing] = firings(changes)
    assert firing.trigger == "cart_abandoned"
    assert to_us(firing.occurred_at) == at(0) + HOUR_US
    assert firing.cause_event_id == "e-cart"
    assert firing.cart_id == "k1"
    assert [i.sku for i in firing.items or []] == ["SHOE-1"]
    assert firing.customer.email == "a@example.com"
    assert firing.seq == 1
    assert firing.replayed  # older than time.stale_after when detected: NOW is years later


@pytest.mark.parametrize(
    ("order_after_us", "fires"),
    [(0, False), (HOUR_US - 1, False), (HOUR_US, True), (-1, True)],
    ids=["unless at s", "unless at s+after-1us", "unless at s+after", "unless before s"],
)
def test_unless_cancels_in_s_to_s_plus_after_and_the_firing_comes_first_at_its_instant(order_after_us, fires):
    p = partition(CART)
    s = at(0)
    changes = run(
        p,
        [engaged("c1", "added_to_cart", s), placed("c1", "o1", s + order_after_us)],
        until=at(1),
    )
    assert fired_at(changes) == ([("cart_abandoned", "c1", s + HOUR_US)] if fires else [])
    if order_after_us == HOUR_US:
        # at the firing instant itself: the firing, then the order's transition
        kinds = [type(c).__name__ for c in changes]
        assert kinds.index("TriggerFired") < kinds.index("Transition")


def test_the_same_order_arriving_before_the_cart_event_also_cancels():
    p = partition(CART)
    s = at(0)
    changes = run(p, [placed("c1", "o1", s + 10), engaged("c1", "added_to_cart", s)], until=at(1))
    assert fired_at(changes) == []


def test_another_on_occurrence_re_arms_from_its_own_instant():
    p = partition(CART)
    events = [
        engaged("c1", "added_to_cart", at(0)),
        engaged("c1", "added_to_cart", at(0) + HOUR_US // 2),
        engaged("c1", "added_to_cart", at(0) + HOUR_US // 2 + 5),
    ]
    changes = run(p, events, until=at(1))
    assert fired_at(changes) == [("cart_abandoned", "c1", at(0) + HOUR_US // 2 + 5 + HOUR_US)]


def test_a_redelivered_or_older_on_event_arms_nothing():
    p = partition(CART)
    first = engaged("c1", "added_to_cart", at(0), event_id="e1")
    later = engaged("c1", "added_to_cart", at(0) + 100, event_id="e2")
    changes = run(p, [first, later, first, later], until=at(1))
    assert fired_at(changes) == [("cart_abandoned", "c1", at(0) + 100 + HOUR_US)]


def test_once_counts_firings_not_armings():
    p = partition({"welcome": {"on": "signed_up", "once": True}})
    changes = run(p, [signed_up("c1", at(0)), signed_up("c1", at(5)), signed_up("c2", at(6))], until=at(10))
    assert fired_at(changes) == [("welcome", "c1", at(0)), ("welcome", "c2", at(6))]
    # a once trigger whose firing was dropped by only_state may fire at a later arming
    p = partition({"welcome": {"on": "signed_up", "once": True, "only_state": ["one_timer"]}})
    changes = run(p, [signed_up("c1", at(0)), placed("c1", "o1", at(1)), signed_up("c1", at(2))], until=at(3))
    assert fired_at(changes) == [("welcome", "c1", at(2))]


def test_only_state_is_read_after_the_transitions_due_at_the_firing_instant():
    # the one-timer window (30 days) ends at the firing instant: inactive, then the firing
    def firing_for(states: list[str]) -> list[Change]:
        p = partition({"nudge": {"on": "became_one_timer", "after": "30d", "only_state": states}})
        return run(p, [placed("c1", "o1", at(0))], until=at(40))

    changes = firing_for(["inactive"])
    assert fired_at(changes) == [("nudge", "c1", at(30))]
    went = next(c for c in changes if isinstance(c, Transition) and c.transition == "went_inactive")
    assert changes.index(went) < changes.index(firings(changes)[0])
    assert fired_at(firing_for(["one_timer"])) == []


def test_after_zero_fires_at_the_on_instant_after_the_changes_made_then():
    p = partition(
        {"thanks": {"on": "order"}, "first": {"on": "became_one_timer"}},
        segments={"buyers": {"orders_over": 0}},
    )
    changes = run(p, [placed("c1", "o1", at(0)), placed("c1", "o1", at(0)), placed("c1", "o2", at(1))])
    assert fired_at(changes) == [("thanks", "c1", at(0)), ("first", "c1", at(0)), ("thanks", "c1", at(1))]
    kinds = [type(c) for c in changes[:4]]
    assert kinds == [Transition, SegmentChange, TriggerFired, TriggerFired]


def test_an_order_known_only_as_cancelled_is_no_order_occurrence():
    p = partition({"thanks": {"on": "order"}})
    changes = run(p, [cancelled("c1", "o1", at(0)), placed("c1", "o1", at(1)), placed("c1", "o2", at(2))])
    assert fired_at(changes) == [("thanks", "c1", at(2))]


def test_a_late_on_event_fires_at_once_stamped_with_the_clock_unless_an_unless_is_known():
    p = partition(CART)
    run(p, [placed("other", "x", at(3))])  # the partition clock is at day 3
    late = run(p, [engaged("c1", "added_to_cart", at(1))])
    assert fired_at(late) == [("cart_abandoned", "c1", at(3))]
    # c2's order falls within the hour after its late cart event: no firing
    changes = run(p, [placed("c2", "o2", at(1) + 60), engaged("c2", "added_to_cart", at(1))], until=at(4))
    assert fired_at(changes) == []


def test_erasure_drops_the_pending_firing():
    p = partition(CART)
    changes = run(p, [engaged("c1", "added_to_cart", at(0)), erased("c1", at(0) + 5)], until=at(1))
    assert firings(changes) == []
    assert p.next_deadline() is None


def test_a_customer_known_only_by_sign_up_or_engagement_is_a_prospect_with_no_transition():
    p = partition({})
    changes = run(p, [signed_up("c1", at(0), email="x@example.com", source="popup")])
    changes += run(p, [engaged("c2", "product_viewed", at(0))])
    assert changes == []
    assert p.customers["c1"].state.value == "prospect"
    assert p.customers["c1"].email == "x@example.com"
    assert p.customers["c2"].order_count == 0


def test_the_latest_contact_data_wins_across_sign_ups_and_placements():
    p = partition({})
    run(
        p,
        [
            signed_up("c1", at(2), email="new@example.com", accepts_marketing=True),
            placed("c1", "o1", at(1), email="old@example.com", accepts_marketing=False),
        ],
    )
    assert (p.customers["c1"].email, p.customers["c1"].accepts_marketing) == ("new@example.com", True)


def test_firings_have_their_own_sequence_and_stable_ids():
    def once() -> list[TriggerFired]:
        p = partition(CART)
        events = [engaged("c1", "added_to_cart", at(d), event_id=f"e{d}") for d in range(3)]
        return firings(run(p, events, until=at(5)))

    first, second = once(), once()
    assert [f.seq for f in first] == [1, 2, 3]
    assert [f.event_id for f in first] == [f.event_id for f in second]
    assert len({f.event_id for f in first}) == 3


def test_an_experiment_may_name_a_trigger_and_holds_out_its_firings():
    p = partition(CART, experiments={"cart_mail": {"on": "cart_abandoned", "holdout": 0.5, "within": "7d"}})
    events = [engaged(f"c{n}", "added_to_cart", at(0)) for n in range(40)]
    fired = firings(run(p, events, until=at(1)))
    assert len(fired) == 40
    groups = {f.experiments[0].group for f in fired}
    assert groups == {"treatment", "holdout"}


def test_a_trigger_removed_from_the_configuration_leaves_nothing_pending():
    p = partition(CART)
    run(p, [engaged("c1", "added_to_cart", at(0))])
    assert p.customers["c1"].triggers is not None
    q = partition({"welcome": {"on": "signed_up"}})
    q.customers = p.customers
    q.clock_us = p.clock_us
    q.rebuild_deadline_index()
    changes = q.advance(at(1), NOW)
    assert firings(changes) == []
    assert not (q.customers["c1"].triggers and q.customers["c1"].triggers.pending)


@pytest.mark.parametrize(
    ("triggers", "key"),
    [
        ({"x": {"after": "1h"}}, "triggers.x.on"),
        ({"x": {"on": "clicked"}}, "triggers.x.on"),
        ({"x": {"on": "entered_segment:nope"}}, "triggers.x.on"),
        ({"x": {"on": "signed_up", "after": "soon"}}, "triggers.x.after"),
        ({"x": {"on": "signed_up", "unless": ["went_inactive"]}}, "triggers.x.unless"),
        ({"x": {"on": "signed_up", "only_state": ["asleep"]}}, "triggers.x.only_state"),
        ({"x": {"on": "signed_up", "once": "yes"}}, "triggers.x.once"),
        ({"x": {"on": "signed_up", "delay": "1h"}}, "triggers.x.delay"),
        ({"went_inactive": {"on": "signed_up"}}, "triggers.went_inactive"),
        ({"Bad-Name": {"on": "signed_up"}}, "triggers.Bad-Name"),
    ],
)
def test_every_trigger_mistake_names_its_key(triggers, key):
    with pytest.raises(ConfigError, match=f"config key `{key}`"):
        config_from_mapping({"triggers": triggers})


def test_the_firing_instant_is_written_in_utc():
    p = partition({"welcome": {"on": "signed_up"}})
    [firing] = firings(run(p, [signed_up("c1", at(0))]))
    assert format_rfc3339(to_us(firing.occurred_at)) == format_rfc3339(at(0))


LEADS = {
    "segments": {
        "leads": {
            "state": ["prospect"],
            "engaged": ["added_to_cart", "email_clicked"],
            "engaged_within": "30d",
        },
        "new_sign_ups": {"signed_up_within": "7d"},
        "shoe_lookers": {"engaged": ["product_viewed:category:shoes"]},
    }
}


def segment_moves(changes: list[Change]) -> list[tuple[str, str | None, int]]:
    moves = [c for c in changes if isinstance(c, SegmentChange)]
    return [(c.change.value, c.segment, to_us(c.occurred_at)) for c in moves]


def test_segments_on_sign_ups_and_engagement_enter_and_leave_at_the_exact_instants():
    p = partition({}, **LEADS)
    shoes = [{"sku": "S1", "category": "shoes", "qty": 1, "unit_minor": 100}]
    changes = run(
        p,
        [
            signed_up("c1", at(0)),
            engaged("c1", "product_viewed", at(1), items=shoes),
            engaged("c1", "email_clicked", at(2)),
            engaged("c1", "product_viewed", at(3)),  # no shoes: no change
        ],
        until=at(40),
    )
    moves = segment_moves(changes)
    assert moves == [
        ("entered_segment", "new_sign_ups", at(0)),
        ("entered_segment", "shoe_lookers", at(1)),
        ("entered_segment", "leads", at(2)),
        ("left_segment", "new_sign_ups", at(7)),
        ("left_segment", "leads", at(32)),
    ]


def test_a_lead_who_orders_leaves_the_leads_at_the_order():
    p = partition({}, **LEADS)
    changes = run(p, [engaged("c1", "added_to_cart", at(0)), placed("c1", "o1", at(1))])
    moves = segment_moves(changes)
    assert moves == [("entered_segment", "leads", at(0)), ("left_segment", "leads", at(1))]


def test_engagement_no_segment_or_trigger_reads_leaves_nothing_in_the_record():
    p = partition(CART, **LEADS)
    run(p, [engaged("c1", "product_viewed", at(0)), placed("c1", "o1", at(0) + 1)])
    customer = p.customers["c1"]
    assert customer.engaged is None
    assert customer.triggers is None or not customer.triggers.pending


@pytest.mark.parametrize(
    ("segment", "key"),
    [
        ({"engaged_within": "30d"}, "segments.x.engaged_within"),
        ({"engaged": "added_to_cart"}, "segments.x.engaged"),
        ({"engaged": ["added to cart"]}, "segments.x.engaged"),
        ({"signed_up_within": "0s"}, "segments.x.signed_up_within"),
    ],
)
def test_every_engagement_condition_mistake_names_its_key(segment, key):
    with pytest.raises(ConfigError, match=f"config key `{key}`"):
        config_from_mapping({"segments": {"x": segment}})


def test_the_event_that_arms_a_trigger_is_not_its_own_unless():
    # "no second order within 14 days of becoming a one-timer": the first order armed it
    p = partition({"nudge": {"on": "became_one_timer", "after": "14d", "unless": ["order"]}})
    assert fired_at(run(p, [placed("c1", "o1", at(0))], until=at(20))) == [("nudge", "c1", at(14))]
    p = partition({"nudge": {"on": "became_one_timer", "after": "14d", "unless": ["order"]}})
    changes = run(p, [placed("c1", "o1", at(0)), placed("c1", "o2", at(5))], until=at(20))
    assert fired_at(changes) == []
    # "no further order within 30 days of an order": each order re-arms, the last one fires
    p = partition({"again": {"on": "order", "after": "30d", "unless": ["order"]}})
    changes = run(p, [placed("c1", "o1", at(0)), placed("c1", "o2", at(10))], until=at(60))
    assert fired_at(changes) == [("again", "c1", at(40))]
    # the same event kind as on and unless: the last view fires, an hour after it
    p = partition(
        {"looked": {"on": "engaged:product_viewed", "after": "1h", "unless": ["engaged:product_viewed"]}}
    )
    views = [engaged("c1", "product_viewed", at(0) + n * 60_000_000) for n in range(3)]
    assert fired_at(run(p, views, until=at(1))) == [("looked", "c1", at(0) + 120_000_000 + HOUR_US)]


def test_a_sign_up_finding_the_state_out_of_date_moves_it_by_time_and_does_not_stop():
    before = partition({}, policy={"one_timer_window": "90d"})
    run(before, [placed("c1", "o1", at(0)), placed("other", "x", at(40))])
    after = partition({"welcome": {"on": "signed_up"}}, policy={"one_timer_window": "30d"})
    after.customers, after.clock_us = before.customers, before.clock_us
    after.rebuild_deadline_index()
    changes = run(after, [signed_up("c1", at(40))])
    [went] = [c for c in changes if isinstance(c, Transition)]
    assert (went.transition, went.cause, went.cause_event_id) == ("went_inactive", "deadline", None)
    assert fired_at(changes) == [("welcome", "c1", at(40))]


def test_a_worker_without_triggers_strands_no_firing_and_once_stays_once():
    p = partition({**CART, "welcome": {"on": "signed_up", "once": True}})
    run(p, [signed_up("c1", at(0)), engaged("c1", "added_to_cart", at(0))])
    bare = partition({})  # a rolling deploy: a worker with no triggers configured for a while
    bare.customers, bare.clock_us = p.customers, p.clock_us
    bare.rebuild_deadline_index()
    assert firings(run(bare, [placed("other", "x", at(1))])) == []
    assert not p.customers["c1"].triggers.pending
    back = partition({**CART, "welcome": {"on": "signed_up", "once": True}})
    back.customers, back.clock_us = bare.customers, bare.clock_us
    back.rebuild_deadline_index()
    changes = run(back, [placed("c1", "o1", at(40)), signed_up("c1", at(41))], until=at(50))
    assert fired_at(changes) == []  # no stale cart reminder, and the welcome fired once ever


def test_a_placement_of_an_order_known_from_a_refund_is_no_order_occurrence():
    p = partition({"thanks": {"on": "order"}})
    changes = run(p, [refunded("c1", "o1", at(0), 100), placed("c1", "o1", at(1)), placed("c1", "o2", at(2))])
    assert fired_at(changes) == [("thanks", "c1", at(2))]
