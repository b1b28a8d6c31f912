"""What `lifecycle tail` and the demo print: one readable line per output, of any kind."""

from __future__ import annotations

from stream.cli.display import change_line


def test_a_firing_line_names_the_trigger_the_cart_and_whether_it_is_held_out():
    firing = {
        "occurred_at": "2026-12-05T10:00:00Z",
        "customer_id": "c1",
        "trigger": "cart_abandoned",
        "cart_id": "k1",
        "items": [{"sku": "SHOE-1", "qty": 1, "unit_minor": 100}],
        "experiments": [{"name": "cart_mail", "group": "holdout"}],
        "replayed": False,
    }
    line = change_line(firing)
    assert "trigger_fired" in line and "cart_abandoned cart=k1 items=SHOE-1" in line
    assert line.endswith("(held out)")
    assert change_line({**firing, "experiments": [], "replayed": True}).endswith("(replayed)")


def test_transitions_and_segment_changes_keep_their_own_lines():
    transition = {
        "occurred_at": "2026-12-05T10:00:00Z",
        "customer_id": "c1",
        "transition": "became_one_timer",
        "from_state": "prospect",
        "to_state": "one_timer",
        "customer": {"order_count": 1, "spend": {"EUR": 1999}},
    }
    assert "became_one_timer" in change_line(transition) and "19.99 EUR" in change_line(transition)
    change = {"occurred_at": "2026-12-05T10:00:00Z", "customer_id": "c1", "change": "entered_segment"}
    assert "entered_segment" in change_line({**change, "segment": "leads"})
