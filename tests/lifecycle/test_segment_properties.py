"""The guarantees of segments stated as properties, against a naive reference model that
recomputes membership from every counted order at the partition clock."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.config import config_from_mapping
from stream.lifecycle import Partition
from stream.lifecycle.instants import DAY_US, parse_rfc3339
from stream.lifecycle.transitions import SegmentChange
from tests.helpers import NOW, at, cancelled, decoded, placed, refunded

SEGMENTS: dict[str, dict[str, Any]] = {
    "frequent": {"orders_over": 1, "orders_within": "60d"},
    "big": {"spend_over": "15 EUR", "spend_within": "90d"},
    "big_ever": {"spend_over": "25 EUR"},
    "new": {"first_order_within": "45d"},
    "recent": {"last_order_within": "20d"},
    "lapsed": {"no_order_within": "100d", "state": ["inactive", "churned"]},
    "shoes": {"bought": ["category:shoes"], "bought_within": "50d"},
    "ever_a1": {"bought": ["sku:A1"]},
}
CLASSES = ["big", "frequent", "new"]
RULES = config_from_mapping({"segments": SEGMENTS, "classes": {"order": CLASSES}}).segments
ITEMS = [
    {"sku": "A1", "qty": 1, "unit_minor": 500, "category": "shoes"},
    {"sku": "B2", "qty": 1, "unit_minor": 500, "category": "hats"},
]


@st.composite
def histories(draw: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for number in range(draw(st.integers(1, 20))):
        customer = draw(st.sampled_from("ab"))
        order = f"{customer}-o{draw(st.integers(0, 5))}"
        when = at(draw(st.integers(0, 400)), us=draw(st.integers(0, 2)))
        kind = draw(st.sampled_from(["placed"] * 4 + ["cancelled", "refunded"]))
        event_id = f"e{number}"
        if kind == "placed":
            items = draw(st.sampled_from([None, [ITEMS[0]], [ITEMS[1]], ITEMS]))
            amount = draw(st.sampled_from([500, 1000, 2000]))
            events.append(placed(customer, order, when, amount, event_id=event_id, items=items))
        elif kind == "cancelled":
            events.append(cancelled(customer, order, when, event_id=event_id))
        else:
            events.append(
                refunded(customer, order, when, draw(st.sampled_from([200, 2000])), event_id=event_id)
            )
    return events


def counted_orders(events: list[dict[str, Any]], customer: str) -> list[tuple[int, int, list[dict]]]:
    """(placed_at, net amount, items) of the customer's counted orders."""
    placements: dict[str, tuple[int, str, int, list[dict]]] = {}
    gone: set[str] = set()
    refunds: dict[str, dict[str, int]] = {}
    for e in events:
        if e["customer_id"] != customer:
            continue
        when = parse_rfc3339(e["occurred_at"])
        order = e["order_id"]
        if e["type"] == "order.placed":
            candidate = (when, e["event_id"], e["total"]["amount_minor"], e.get("items") or [])
            placements[order] = min(placements.get(order, candidate), candidate)
        elif e["type"] == "order.cancelled":
            gone.add(order)
        else:
            refunds.setdefault(order, {})[e["event_id"]] = e["amount"]["amount_minor"]
    result = []
    for order, (when, _, total, items) in placements.items():
        refunded_minor = sum(refunds.get(order, {}).values())
        if order not in gone and refunded_minor < total:
            result.append((when, total - refunded_minor, items))
    return result


def expected_members(events: list[dict[str, Any]], customer: str, t: int, state: str) -> list[str]:
    orders = counted_orders(events, customer)
    times = [w for w, _, _ in orders]

    def within(window_days: int) -> list[tuple[int, int, list[dict]]]:
        return [o for o in orders if t - o[0] < window_days * DAY_US]

    def bought(selection: list[tuple[int, int, list[dict]]], key: tuple[str, str]) -> bool:
        return any(item[key[0]] == key[1] for _, _, items in selection for item in items)

    holds = {
        "frequent": len(within(60)) > 1,
        "big": sum(v for _, v, _ in within(90)) > 1500,
        "big_ever": sum(v for _, v, _ in orders) > 2500,
        "new": bool(times) and t - min(times) < 45 * DAY_US,
        "recent": bool(times) and t - max(times) < 20 * DAY_US,
        "lapsed": bool(times) and t - max(times) >= 100 * DAY_US and state in ("inactive", "churned"),
        "shoes": bought(within(50), ("category", "shoes")),
        "ever_a1": bought(orders, ("sku", "A1")),
    }
    return sorted(name for name, yes in holds.items() if yes)


# without a `state` condition, a deadline that changes no window skips evaluation: the same
# model must hold
RULES_WITHOUT_STATE = config_from_mapping(
    {"segments": {k: v for k, v in SEGMENTS.items() if "state" not in v}, "classes": {"order": CLASSES}}
).segments


def new_partition(rules=RULES) -> Partition:
    return Partition({}, segments=rules)


@settings(max_examples=250, deadline=None)
@given(histories(), st.integers(0, 900), st.booleans())
def test_membership_is_the_naive_model_after_every_event_and_after_time_passes(
    events, later_days, with_state
):
    rules = RULES if with_state else RULES_WITHOUT_STATE
    names = {s.name for s in rules.segments}
    p = new_partition(rules)
    for index, event in enumerate(events):
        p.apply(decoded(event), NOW)
        for cid, customer in p.customers.items():
            want = expected_members(events[: index + 1], cid, p.clock_us, customer.state.value)
            assert customer.segments == [n for n in want if n in names], (cid, index)
    p.advance(at(later_days), NOW)
    for cid, customer in p.customers.items():
        want = [n for n in expected_members(events, cid, p.clock_us, customer.state.value) if n in names]
        assert customer.segments == want
        assert customer.segment_class == next((c for c in CLASSES if c in want), None)


@settings(max_examples=150, deadline=None)
@given(histories().flatmap(lambda e: st.tuples(st.just(e), st.permutations(e))))
def test_final_membership_does_not_depend_on_arrival_order(pair):
    finals = []
    for events in pair:
        p = new_partition()
        for event in events:
            p.apply(decoded(event), NOW)
        p.advance(at(1000), NOW)
        finals.append({c: (s.segments, s.segment_class) for c, s in p.customers.items()})
    assert finals[0] == finals[1]


@settings(max_examples=150, deadline=None)
@given(histories(), st.integers(0, 900), st.integers(1, 3))
def test_same_input_twice_and_stepwise_advance_give_the_same_changes(events, until_days, step):
    outputs = []
    for stepwise in (False, False, True):
        p = new_partition()
        out = []
        for event in events:
            out += p.apply(decoded(event), NOW).changes
        target = at(until_days)
        while stepwise and (p.clock_us is None or p.clock_us < target):
            out += p.advance(target, NOW, max_deadlines=step)
        out += p.advance(target, NOW)
        outputs.append([msgspec.json.encode(c) for c in out])
    assert outputs[0] == outputs[1] == outputs[2]


@settings(max_examples=150, deadline=None)
@given(histories(), st.integers(0, 900))
def test_segment_change_seq_has_no_gaps_and_time_never_goes_back(events, until_days):
    p = new_partition()
    out = []
    for event in events:
        out += p.apply(decoded(event), NOW).changes
    out += p.advance(at(until_days), NOW)
    by_customer: dict[str, list[SegmentChange]] = {}
    for change in out:
        if isinstance(change, SegmentChange):
            by_customer.setdefault(change.customer_id, []).append(change)
    for changes in by_customer.values():
        assert [c.seq for c in changes] == list(range(1, len(changes) + 1))
        assert all(a.occurred_at <= b.occurred_at for a, b in pairwise(changes))
