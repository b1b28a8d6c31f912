"""Contact data (email, marketing consent) on order events: the latest placement's is the
customer's, whatever the arrival order; dropped on arrival when not kept; gone with erasure."""

from __future__ import annotations

from itertools import permutations

from stream.lifecycle import Partition
from tests.helpers import NOW, at, decoded, erased, placed

EVENTS = [
    placed("ann", "a1", at(0), email="old@example.com", accepts_marketing=False, event_id="e1"),
    placed("ann", "a2", at(5), email="ann@example.com", accepts_marketing=True, event_id="e2"),
    placed("ann", "a3", at(9), event_id="e3"),  # carries none: changes nothing
]


def _apply(events, keep_contact=True):
    p = Partition({}, keep_contact=keep_contact)
    out = []
    for event in events:
        out += p.apply(decoded(event), NOW).changes
    return p, out


def test_the_latest_placement_with_contact_data_wins_in_any_arrival_order():
    for order in permutations(EVENTS):
        p, _ = _apply(list(order))
        ann = p.customers["ann"]
        assert (ann.email, ann.accepts_marketing) == ("ann@example.com", True)


def test_snapshots_carry_the_contact_data_known_at_the_transition():
    _, out = _apply(EVENTS)
    assert [(t.transition, t.customer.email) for t in out] == [
        ("became_one_timer", "old@example.com"),
        ("became_repeat", "ann@example.com"),
    ]


def test_not_kept_it_never_enters_state_or_output():
    p, out = _apply(EVENTS, keep_contact=False)
    assert p.customers["ann"].email is None
    assert all(t.customer.email is None and t.customer.accepts_marketing is None for t in out)


def test_erasure_forgets_it():
    p, out = _apply([*EVENTS, erased("ann", at(10))])
    assert "ann" not in p.customers
    assert out[-1].customer.email is None
