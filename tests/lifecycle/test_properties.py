"""The guarantees of docs/lifecycle.md as properties, checked against a naive reference model."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.lifecycle import Policy, State, state_at
from stream.lifecycle.instants import DAY_US, parse_rfc3339
from tests.helpers import NOW, at, cancelled, decoded, new_partition, placed, refunded

TOTAL = 1000
POLICY = Policy()


@st.composite
def order_histories(draw: Any) -> list[dict[str, Any]]:
    """A few customers with a few orders, cancellations, refunds and redeliveries."""
    events: list[dict[str, Any]] = []
    for number in range(draw(st.integers(1, 25))):
        customer = draw(st.sampled_from("abc"))
        order = f"{customer}-o{draw(st.integers(0, 5))}"
        when = at(draw(st.integers(0, 800)), us=draw(st.integers(0, 3)))
        kind = draw(st.sampled_from(["placed"] * 4 + ["cancelled", "refunded"]))
        event_id = f"e{number}"
        if kind == "placed":
            events.append(placed(customer, order, when, TOTAL, event_id=event_id))
        elif kind == "cancelled":
            events.append(cancelled(customer, order, when, event_id=event_id))
        else:
            amount = draw(st.sampled_from([300, 700, TOTAL]))
            events.append(refunded(customer, order, when, amount, event_id=event_id))
        if draw(st.integers(0, 9)) == 0:
            events.append(dict(events[-1]))  # a redelivery
    return events


def expected_states(events: list[dict[str, Any]], clock: int) -> dict[str, State]:
    """The state table applied naively to the counted orders of every customer seen."""
    placements: dict[tuple[str, str], tuple[int, str]] = {}
    cancelled_orders: set[tuple[str, str]] = set()
    refunds: dict[tuple[str, str], dict[str, int]] = {}
    customers = set()
    for event in events:
        key = (event["customer_id"], event.get("order_id", ""))
        customers.add(event["customer_id"])
        when = parse_rfc3339(event["occurred_at"])
        if event["type"] == "order.placed":
            placements[key] = min(placements.get(key, (when, event["event_id"])), (when, event["event_id"]))
        elif event["type"] == "order.cancelled":
            cancelled_orders.add(key)
        else:
            refunds.setdefault(key, {})[event["event_id"]] = event["amount"]["amount_minor"]
    result = {}
    for customer in customers:
        times = sorted(
            when
            for (c, o), (when, _) in placements.items()
            if c == customer
            and (c, o) not in cancelled_orders
            and sum(refunds.get((c, o), {}).values()) < TOTAL
        )
        if times:
            result[customer] = state_at(POLICY, len(times), times[0], times[-1], clock)
        else:
            result[customer] = State.PROSPECT
    return result


@settings(max_examples=300, deadline=None)
@given(order_histories())
def test_state_is_the_table_applied_to_counted_orders_after_every_event(events):
    p = new_partition()
    for index, event in enumerate(events):
        p.apply(decoded(event), NOW)
        expected = expected_states(events[: index + 1], p.clock_us)
        assert {c: s.state for c, s in p.customers.items()} == expected


@settings(max_examples=200, deadline=None)
@given(order_histories().flatmap(lambda e: st.tuples(st.just(e), st.permutations(e))))
def test_final_state_does_not_depend_on_arrival_order(histories):
    original, permuted = histories
    finals = []
    for events in (original, permuted):
        p = new_partition()
        for event in events:
            p.apply(decoded(event), NOW)
        p.advance(at(2000), NOW)
        finals.append(
            {
                c: (s.state, s.order_count, s.first_order_at, s.last_order_at, s.spend)
                for c, s in p.customers.items()
            }
        )
    assert finals[0] == finals[1]
    assert {c: v[0] for c, v in finals[0].items()} == expected_states(original, at(2000))


@settings(max_examples=150, deadline=None)
@given(order_histories())
def test_same_input_gives_byte_identical_output(events):
    outputs = []
    for _ in range(2):
        p = new_partition()
        out = []
        for event in events:
            out.extend(p.apply(decoded(event), NOW).changes)
        out.extend(p.advance(at(1500), NOW))
        outputs.append([msgspec.json.encode(t) for t in out])
    assert outputs[0] == outputs[1]


@settings(max_examples=200, deadline=None)
@given(order_histories(), st.integers(0, 3000))
def test_seq_has_no_gaps_and_time_never_goes_back_per_customer(events, until_days):
    p = new_partition()
    out = []
    for event in events:
        out.extend(p.apply(decoded(event), NOW).changes)
    out.extend(p.advance(at(until_days), NOW))
    by_customer: dict[str, list] = {}
    for t in out:
        by_customer.setdefault(t.customer_id, []).append(t)
    for customer, transitions in by_customer.items():
        assert [t.seq for t in transitions] == list(range(1, len(transitions) + 1))
        assert all(a.occurred_at <= b.occurred_at for a, b in pairwise(transitions))
        assert all(a.to_state == b.from_state for a, b in pairwise(transitions))
        if customer in p.customers:
            assert p.customers[customer].state == transitions[-1].to_state
            assert p.customers[customer].seq == transitions[-1].seq


def test_deadline_firing_order_is_time_order_across_many_customers():
    p = new_partition()
    events = [placed(f"c{i}", f"o{i}", at(i % 7, us=i)) for i in range(50)]
    for event in sorted(events, key=lambda e: e["occurred_at"]):
        p.apply(decoded(event), NOW)
    fired = p.advance(at(40), NOW)
    assert len(fired) == 50
    assert [t.occurred_at for t in fired] == sorted(t.occurred_at for t in fired)
    assert all(
        t.occurred_at == t.customer.first_order_at + __import__("datetime").timedelta(30) for t in fired
    )
    assert DAY_US  # keeps the unit import honest


@settings(max_examples=200, deadline=None)
@given(order_histories(), st.integers(0, 3000), st.integers(1, 4), st.integers(0, 800))
def test_advancing_in_steps_gives_what_one_jump_gives(events, until_days, step, then_days):
    """A clock moved a few deadlines at a time (as the worker catches up after a pause, and
    with an event arriving in between) emits exactly what one jump emits."""
    outputs = []
    for stepwise in (False, True):
        p = new_partition()
        out = []
        for event in events:
            out.extend(p.apply(decoded(event), NOW).changes)
        target = at(until_days)
        if stepwise:
            before = p.clock_us
            while p.clock_us is None or p.clock_us < target:
                out.extend(p.advance(target, NOW, max_deadlines=step))
                assert p.clock_us is not None and (before is None or p.clock_us >= before)
                before = p.clock_us
        else:
            out.extend(p.advance(target, NOW))
        late = placed("d", "d-late", at(until_days + then_days), TOTAL, event_id="late")
        out.extend(p.apply(decoded(late), NOW).changes)
        outputs.append([msgspec.json.encode(t) for t in out])
    assert outputs[0] == outputs[1]
