"""Segments and classes: each condition at its boundary instants, classes, ordering, erasure."""

from __future__ import annotations

import re
from typing import Any

import pytest

from stream.config import ConfigError, config_from_mapping
from stream.lifecycle import Partition, Transition
from stream.lifecycle.instants import from_us
from stream.lifecycle.segments import SegmentRules
from stream.lifecycle.transitions import Change, SegmentChange
from tests.helpers import NOW, at, cancelled, decoded, erased, placed, refunded


def rules(segments: dict[str, dict[str, Any]], classes: list[str] | None = None) -> SegmentRules:
    document: dict[str, Any] = {"segments": segments}
    if classes is not None:
        document["classes"] = {"order": classes}
    return config_from_mapping(document).segments


def partition(segments: dict[str, dict[str, Any]], classes: list[str] | None = None) -> Partition:
    return Partition({}, segments=rules(segments, classes))


def run(p: Partition, events: list[dict[str, Any]]) -> list[Change]:
    out: list[Change] = []
    for event in events:
        out += p.apply(decoded(event), NOW).changes
    return out


def moves(changes: list[Change]) -> list[tuple[str, str | None]]:
    """(change, segment or 'from->to' class) of the segment changes, in order."""
    found = []
    for c in changes:
        if isinstance(c, SegmentChange):
            label = c.segment if c.segment is not None else f"{c.from_class}->{c.to_class}"
            found.append((c.change.value, label))
    return found


def members(p: Partition, customer: str = "c1") -> list[str]:
    return p.customers[customer].segments


# -- conditions, each at its boundary -------------------------------------------------------


def test_orders_over_within_a_window_is_in_at_the_order_and_out_exactly_when_one_leaves():
    p = partition({"frequent": {"orders_over": 1, "orders_within": "30d"}})
    out = run(p, [placed("c1", "o1", at(0)), placed("c1", "o2", at(10))])
    assert moves(out) == [("entered_segment", "frequent")]
    assert out[-1].occurred_at == from_us(at(10))
    assert moves(p.advance(at(30, us=-1), NOW)) == []
    left = p.advance(at(30), NOW)
    assert moves(left) == [("left_segment", "frequent")]
    assert left[-1].occurred_at == from_us(at(30)) and left[-1].cause == "deadline"


def test_orders_over_without_a_window_counts_every_counted_order():
    p = partition({"three_plus": {"orders_over": 2}})
    run(p, [placed("c1", f"o{i}", at(i * 100)) for i in range(3)])
    assert members(p) == ["three_plus"]
    p.advance(at(2000), NOW)
    assert members(p) == ["three_plus"]


def test_spend_over_is_strict_counts_one_currency_and_partial_refunds_lower_it():
    p = partition({"big": {"spend_over": "20 EUR"}})
    run(p, [placed("c1", "o1", at(0), 1000), placed("c1", "o2", at(1), 1000)])
    assert members(p) == []  # 20.00 is not more than 20
    run(p, [placed("c1", "o3", at(2), 5000, currency="USD")])
    assert members(p) == []
    run(p, [placed("c1", "o4", at(3), 1)])
    assert members(p) == ["big"]
    out = run(p, [refunded("c1", "o1", at(4), 1)])
    assert moves(out) == [("left_segment", "big")]


def test_spend_within_leaves_when_the_orders_that_made_it_age_out():
    p = partition({"big_recent": {"spend_over": "15 EUR", "spend_within": "10d"}})
    run(p, [placed("c1", "o1", at(0), 1000), placed("c1", "o2", at(5), 1000)])
    assert members(p) == ["big_recent"]
    out = p.advance(at(20), NOW)
    assert moves(out) == [("left_segment", "big_recent")]
    assert out[0].occurred_at == from_us(at(10))  # o1 leaves: 10.00 is not over 15


def test_first_order_within_runs_out_at_first_plus_window_even_with_later_orders():
    p = partition({"new": {"first_order_within": "60d"}})
    run(p, [placed("c1", "o1", at(0)), placed("c1", "o2", at(30))])
    assert members(p) == ["new"]
    out = p.advance(at(100), NOW)
    assert [(c.change, c.occurred_at) for c in out if isinstance(c, SegmentChange)] == [
        ("left_segment", from_us(at(60)))
    ]


def test_no_order_within_is_entered_at_last_plus_window_and_left_by_an_order():
    p = partition({"lapsed": {"no_order_within": "120d"}})
    run(p, [placed("c1", "o1", at(0))])
    assert members(p) == []
    out = p.advance(at(200), NOW)
    [entered] = [c for c in out if isinstance(c, SegmentChange)]
    assert entered.occurred_at == from_us(at(120)) and entered.change == "entered_segment"
    assert moves(run(p, [placed("c1", "o2", at(201))])) == [("left_segment", "lapsed")]


def test_a_window_running_out_at_an_orders_instant_leaves_then_enters():
    p = partition({"recent": {"last_order_within": "7d"}})
    run(p, [placed("c1", "o1", at(0))])
    out = run(p, [placed("c1", "o2", at(7))])
    assert moves(out) == [("left_segment", "recent"), ("entered_segment", "recent")]
    assert [c.cause for c in out if isinstance(c, SegmentChange)] == ["deadline", "order.placed"]


def test_with_no_counted_order_no_order_condition_holds():
    p = partition({"lapsed": {"no_order_within": "1d"}, "recent": {"last_order_within": "1d"}})
    run(p, [cancelled("c1", "o1", at(0))])
    p.advance(at(10), NOW)
    assert members(p) == []


def test_bought_matches_sku_or_category_and_bought_within_ages_out():
    item = {"sku": "A-1", "qty": 1, "unit_minor": 1000, "category": "shoes"}
    p = partition(
        {
            "shoe_buyers": {"bought": ["category:shoes"]},
            "a1_recently": {"bought": ["sku:A-1"], "bought_within": "30d"},
            "hats": {"bought": ["category:hats"]},
        }
    )
    run(p, [placed("c1", "o1", at(0), items=[item])])
    assert members(p) == ["a1_recently", "shoe_buyers"]
    out = p.advance(at(40), NOW)
    assert moves(out) == [("left_segment", "a1_recently")]
    assert out[-1].occurred_at == from_us(at(30))
    assert moves(run(p, [cancelled("c1", "o1", at(41))])) == [("left_segment", "shoe_buyers")]


def test_state_condition_follows_lifecycle_deadlines():
    p = partition({"at_risk_regulars": {"state": ["at_risk"]}})
    run(p, [placed("c1", "o1", at(0)), placed("c1", "o2", at(1))])
    out = p.advance(at(200), NOW)
    kinds = [(type(c).__name__, getattr(c, "transition", None) or c.change, c.occurred_at) for c in out]
    assert kinds == [
        ("Transition", "went_at_risk", from_us(at(61))),
        ("SegmentChange", "entered_segment", from_us(at(61))),
        ("Transition", "went_inactive", from_us(at(91))),
        ("SegmentChange", "left_segment", from_us(at(91))),
    ]


def test_cancellation_takes_a_customer_out_at_the_partition_clock():
    p = partition({"two_plus": {"orders_over": 1}})
    run(p, [placed("c1", "o1", at(0)), placed("c1", "o2", at(1)), placed("c2", "x", at(5))])
    out = run(p, [cancelled("c1", "o2", at(2))])  # late: the clock is at day 5
    [left] = [c for c in out if isinstance(c, SegmentChange)]
    assert left.change == "left_segment" and left.occurred_at == from_us(at(5))
    assert left.cause == "order.cancelled"


# -- classes and ordering -------------------------------------------------------------------


CLASSES = {
    "a": {"spend_over": "100 EUR"},
    "b": {"spend_over": "50 EUR"},
    "c": {"orders_over": 0},
}


def test_class_is_the_first_listed_segment_and_moved_up_follows_the_list():
    p = partition(CLASSES, classes=["a", "b", "c"])
    out = run(p, [placed("c1", "o1", at(0), 1000)])
    assert moves(out) == [("entered_segment", "c"), ("class_changed", "None->c")]
    assert out[-1].moved_up is True  # none -> c is up
    out = run(p, [placed("c1", "o2", at(1), 6000)])
    assert moves(out) == [("entered_segment", "b"), ("class_changed", "c->b")]
    assert out[-1].moved_up is True
    out = run(p, [cancelled("c1", "o2", at(2))])
    assert moves(out) == [("left_segment", "b"), ("class_changed", "b->c")]
    assert out[-1].moved_up is False
    assert p.customers["c1"].segment_class == "c"


def test_at_one_instant_the_transition_then_segments_in_config_order_then_the_class():
    p = partition({"zeta": {"orders_over": 0}, "alpha": {"orders_over": 0}}, classes=["alpha", "zeta"])
    out = run(p, [placed("c1", "o1", at(0))])
    assert isinstance(out[0], Transition) and out[0].transition == "became_one_timer"
    assert moves(out) == [
        ("entered_segment", "zeta"),
        ("entered_segment", "alpha"),
        ("class_changed", "None->alpha"),
    ]
    assert [c.seq for c in out if isinstance(c, SegmentChange)] == [1, 2, 3]
    snapshot = out[0].customer
    assert snapshot.segments == ["alpha", "zeta"] and snapshot.segment_class == "alpha"


def test_erasure_leaves_every_segment_in_config_order_then_the_class_with_no_personal_data():
    p = partition({"zeta": {"orders_over": 0}, "alpha": {"orders_over": 0}}, classes=["alpha", "zeta"])
    run(p, [placed("c1", "o1", at(0)), placed("c2", "x", at(3))])
    out = run(p, [erased("c1", at(4))])
    assert moves(out) == [
        ("left_segment", "zeta"),
        ("left_segment", "alpha"),
        ("class_changed", "alpha->None"),
    ]
    changes = [c for c in out if isinstance(c, SegmentChange)]
    assert {c.occurred_at for c in changes} == {from_us(at(4))}
    assert {c.cause for c in changes} == {"customer.erased"}
    assert all(c.customer.order_count == 0 and c.customer.segments == [] for c in changes)
    assert out[-1].moved_up is False


def test_segment_change_ids_are_stable_and_apart_from_transition_ids():
    events = [placed("c1", "o1", at(0)), placed("c1", "o2", at(1))]
    first = run(partition({"two": {"orders_over": 1}}), events)
    again = run(partition({"two": {"orders_over": 1}}), events)
    assert [c.event_id for c in first] == [c.event_id for c in again]
    assert len({c.event_id for c in first}) == len(first)


# -- configuration changes ------------------------------------------------------------------


def test_a_new_segment_re_evaluated_at_take_up_is_a_replayed_change_at_the_partition_clock():
    p = partition({"two": {"orders_over": 1}})
    run(p, [placed("c1", "o1", at(0)), placed("c1", "o2", at(1)), placed("c2", "x", at(2))])
    redefined = Partition(p.customers, clock_us=p.clock_us, segments=rules({"one": {"orders_over": 0}}))
    out = redefined.reevaluate_segments(p.customers["c1"], NOW)
    assert moves(out) == [("entered_segment", "one"), ("left_segment", "two")]  # gone ones last
    assert all(c.replayed and c.cause == "configuration" for c in out)
    assert {c.occurred_at for c in out} == {from_us(at(2))}


# -- cost -----------------------------------------------------------------------------------


def test_a_long_history_keeps_only_the_orders_within_the_longest_window():
    p = partition({"frequent": {"orders_over": 3, "orders_within": "30d"}})
    run(p, [placed("c1", f"o{i}", at(i)) for i in range(400)])
    recent = p.customers["c1"].recent
    assert recent is not None and len(recent) == 30
    assert members(p) == ["frequent"]


# -- configuration errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segments", "key"),
    [
        ({"Big": {"orders_over": 1}}, "segments.Big"),
        ({"x": {}}, "segments.x"),
        ({"x": {"orders_within": "3d"}}, "segments.x.orders_within"),
        ({"x": {"orders_over": 1, "orders_within": "soon"}}, "segments.x.orders_within"),
        ({"x": {"spend_over": "500"}}, "segments.x.spend_over"),
        ({"x": {"bought": ["shoes"]}}, "segments.x.bought"),
        ({"x": {"state": ["gone"]}}, "segments.x.state"),
        ({"x": {"orders_over": -1}}, "segments.x.orders_over"),
        ({"x": {"sometimes": 1}}, "segments.x.sometimes"),
        (
            {"x": {"orders_over": 1, "stores": {"outlet": {"orders_over": "many"}}}},
            "segments.x.stores.outlet.orders_over",
        ),
    ],
)
def test_every_segment_mistake_names_its_key(segments, key):
    with pytest.raises(ConfigError, match=re.escape(f"config key `{key}`")):
        config_from_mapping({"segments": segments})


def test_classes_must_name_configured_segments():
    with pytest.raises(ConfigError, match=re.escape("config key `classes.order`")):
        config_from_mapping({"segments": {"a": {"orders_over": 0}}, "classes": {"order": ["a", "b"]}})


def test_a_store_overrides_a_segments_conditions_for_its_customers():
    p = partition({"big": {"spend_over": "100 EUR", "stores": {"outlet": {"spend_over": "10 EUR"}}}})
    run(p, [placed("c1", "o1", at(0), 2000, store_id="outlet"), placed("c2", "o2", at(0), 2000)])
    assert members(p, "c1") == ["big"] and members(p, "c2") == []
