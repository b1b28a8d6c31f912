"""The guarantees of triggers stated as properties: against a naive model that decides each
`on` occurrence from the whole history, whatever the arrival order while nothing is due,
the same with the clock moved in steps or in one jump, and the same run after run."""

from __future__ import annotations

import random
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.config import config_from_mapping
from stream.lifecycle import Partition
from stream.lifecycle.instants import DAY_US, HOUR_US, parse_rfc3339, to_us
from stream.lifecycle.transitions import Change, TriggerFired
from tests.helpers import NOW, at, decoded, engaged, placed, signed_up

AFTER_DAYS = 10  # longer than the span of the histories: nothing is due before all arrive
TRIGGERS = {
    "cart": {"on": "engaged:added_to_cart", "after": f"{AFTER_DAYS}d", "unless": ["order"]},
    "browse": {
        "on": "engaged:product_viewed",
        "after": f"{AFTER_DAYS}d",
        "unless": ["order", "engaged:added_to_cart"],
    },
    "nudge": {"on": "signed_up", "after": f"{AFTER_DAYS}d", "unless": ["order"], "only_state": ["prospect"]},
}
CONFIG = config_from_mapping({"triggers": TRIGGERS})
KINDS = {"cart": "engaged:added_to_cart", "browse": "engaged:product_viewed", "nudge": "signed_up"}


def partition() -> Partition:
    return Partition({}, CONFIG.policy_book(), triggers=CONFIG.triggers)


@st.composite
def histories(draw: Any) -> list[dict[str, Any]]:
    """Events of two customers at distinct instants within AFTER_DAYS - 1 days."""
    count = draw(st.integers(1, 24))
    instants = draw(
        st.lists(st.integers(0, (AFTER_DAYS - 1) * 24), min_size=count, max_size=count, unique=True)
    )
    events = []
    for number, hours in enumerate(instants):
        customer = draw(st.sampled_from("ab"))
        when = at(0) + hours * HOUR_US
        kind = draw(st.sampled_from(["cart", "view", "view", "cart", "order", "signed_up"]))
        event_id = f"e{number}"
        if kind == "cart":
            events.append(engaged(customer, "added_to_cart", when, event_id=event_id, cart_id=f"k{number}"))
        elif kind == "view":
            events.append(engaged(customer, "product_viewed", when, event_id=event_id))
        elif kind == "order":
            events.append(placed(customer, f"o{number}", when, event_id=event_id))
        else:
            events.append(signed_up(customer, when, event_id=event_id))
    return events


def occurrence_name(event: dict[str, Any]) -> str:
    if event["type"] == "customer.engaged":
        return f"engaged:{event['kind']}"
    return "signed_up" if event["type"] == "customer.signed_up" else "order"


def expected_firings(events: list[dict[str, Any]]) -> set[tuple[str, str, int, str]]:
    """Each `on` occurrence fires at s + after unless a later one of the same trigger came
    before that, or an `unless` one fell in [s, s + after); `only_state` prospect: no order
    at or before the firing instant."""
    after = AFTER_DAYS * DAY_US
    fired = set()
    for name, spec in TRIGGERS.items():
        for event in events:
            if occurrence_name(event) != KINDS[name]:
                continue
            customer, s = event["customer_id"], parse_rfc3339(event["occurred_at"])
            mine = [e for e in events if e["customer_id"] == customer]
            times = {occurrence_name(e): [] for e in mine}
            for e in mine:
                times[occurrence_name(e)].append(parse_rfc3339(e["occurred_at"]))
            if any(s < t < s + after for t in times.get(KINDS[name], [])):
                continue
            if any(s <= t < s + after for kind in spec["unless"] for t in times.get(kind, [])):
                continue
            if spec.get("only_state") and any(t <= s + after for t in times.get("order", [])):
                continue
            fired.add((name, customer, s + after, event["event_id"]))
    return fired


def run(events: list[dict[str, Any]], steps: list[int] | None = None) -> list[Change]:
    p = partition()
    out: list[Change] = []
    for event in events:
        out += p.apply(decoded(event), NOW).changes
    for until in steps or []:
        out += p.advance(until, NOW)
    out += p.advance(at(6 * AFTER_DAYS), NOW)  # past every step
    return out


def firing_keys(changes: list[Change]) -> set[tuple[str, str, int, str]]:
    return {
        (c.trigger, c.customer_id, to_us(c.occurred_at), c.cause_event_id)
        for c in changes
        if isinstance(c, TriggerFired)
    }


def without_detection(changes: list[Change]) -> list[bytes]:
    return [msgspec.json.encode(msgspec.structs.replace(c, detected_at=c.occurred_at)) for c in changes]


@settings(max_examples=300, deadline=None)
@given(histories())
def test_in_time_order_the_firings_are_the_naive_models(events):
    assert firing_keys(run(events)) == expected_firings(events)


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_the_arrival_order_changes_nothing_while_no_firing_is_due(events, rng: random.Random):
    shuffled = list(events)
    rng.shuffle(shuffled)
    assert firing_keys(run(shuffled)) == firing_keys(run(events))


@settings(max_examples=200, deadline=None)
@given(histories(), st.lists(st.integers(0, 3 * AFTER_DAYS * 24), max_size=12))
def test_a_clock_moved_in_steps_fires_what_one_jump_fires(events, hours):
    last = max(parse_rfc3339(e["occurred_at"]) for e in events)
    steps = sorted(last + h * HOUR_US for h in hours)
    assert without_detection(run(events, steps)) == without_detection(run(events))


@settings(max_examples=100, deadline=None)
@given(histories())
def test_the_same_history_gives_the_same_firings_with_the_same_ids(events):
    first, second = run(events), run(events)
    assert without_detection(first) == without_detection(second)
    ids = [c.event_id for c in first if isinstance(c, TriggerFired)]
    assert len(ids) == len(set(ids))
