"""The history generator: deterministic, and shaped like a shop's orders."""

from collections import Counter
from datetime import UTC, datetime

import orjson

from stream.inputs.generate import history
from stream.inputs.messages import decode_event

START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)


def test_same_seed_same_bytes_other_seed_other_bytes():
    assert history(200, START, END, seed=7) == history(200, START, END, seed=7)
    assert history(200, START, END, seed=7) != history(200, START, END, seed=8)


def test_history_has_the_shapes_the_engine_must_handle():
    raw = history(3000, START, END, seed=3)
    events = [orjson.loads(r) for r in raw]
    for line in raw[:500]:
        decode_event(line)
    kinds = Counter(e["type"] for e in events)
    assert kinds["order.cancelled"] > 0 and kinds["order.refunded"] > 0 and kinds["customer.erased"] > 0
    orders = Counter(e["customer_id"] for e in events if e["type"] == "order.placed")
    one_order = sum(1 for n in orders.values() if n == 1)
    assert one_order / len(orders) > 0.45  # most customers buy once
    assert max(orders.values()) >= 20  # loyal buyers come back many times
    ids = Counter(e["event_id"] for e in events)
    assert any(n > 1 for n in ids.values())  # redeliveries
    assert any(e["event_id"].endswith("-resent") for e in events)  # same order sent twice
    refunds = [e for e in events if e["type"] == "order.refunded"]
    assert len({e["amount"]["amount_minor"] > 0 for e in refunds}) == 1
    assert sum(1 for e in events if not e["occurred_at"].endswith("Z")) > 0  # zone offsets


def test_engagement_adds_what_happens_before_orders_and_leaves_the_orders_as_they_were():
    plain = history(300, START, END, seed=5)
    raw = history(300, START, END, seed=5, engagement=10)
    events = [orjson.loads(r) for r in raw]
    ordered_only = [r for r, e in zip(raw, events, strict=True) if not e["type"].startswith("customer.s")]
    ordered_only = [r for r in ordered_only if orjson.loads(r)["type"] != "customer.engaged"]
    assert ordered_only == plain
    for line in raw[:2000]:
        decode_event(line)
    kinds = Counter(e.get("kind") or e["type"] for e in events)
    orders = kinds["order.placed"]
    assert 8 * orders < kinds["product_viewed"] + kinds["added_to_cart"] + kinds["checkout_started"]
    assert kinds["customer.signed_up"] > 0
    assert kinds["added_to_cart"] > kinds["checkout_started"]  # carts left behind
    buyers = {e["customer_id"] for e in events if e["type"] == "order.placed"}
    prospects = {e["customer_id"] for e in events} - buyers
    assert len(prospects) >= 0.25 * len(buyers)  # people who never order
