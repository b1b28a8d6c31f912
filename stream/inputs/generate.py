"""Deterministic synthetic order history with the shapes shops see.

Most customers buy once; occasional and loyal buyers come back at their own rhythm and
some stop; orders get cancelled and refunded; events get redelivered and the same order is
sometimes sent twice. The same seed and arguments always give the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec

from ..lifecycle.instants import DAY_US, HOUR_US, MINUTE_US, from_us, to_us

# msgspec, not orjson: orjson's bytes each keep about 4 KB of the process's memory (its
# buffer shrunk in place), and a 10M-event history held 24 GB before it was written
_encode = msgspec.json.Encoder().encode

CATALOG = [
    ("SKU-TEE", "apparel", 1999),
    ("SKU-HOODIE", "apparel", 4999),
    ("SKU-MUG", "home", 1299),
    ("SKU-CANDLE", "home", 1599),
    ("SKU-BEANS", "coffee", 1499),
    ("SKU-GRINDER", "coffee", 8999),
    ("SKU-SOCKS", "apparel", 899),
    ("SKU-TOTE", "accessories", 2499),
]
CHANNELS = ["web", "web", "web", "app", "app", "marketplace"]
PAYMENTS = ["card", "card", "paypal", "klarna", "apple_pay"]
STORES = [("eu", "EUR", timezone(timedelta(hours=1))), ("us", "USD", timezone(timedelta(hours=-5)))]


@dataclass(frozen=True)
class HistoryShape:
    """Shares and rhythms of a generated history; the defaults give about 10 events a customer."""

    one_timer_share: float = 0.5
    loyal_share: float = 0.2
    occasional_gap_days: float = 30.0
    loyal_gap_days: float = 12.0
    occasional_stop_chance: float = 0.08
    loyal_stop_chance: float = 0.02
    cancel_chance: float = 0.03
    partial_refund_chance: float = 0.04
    full_refund_chance: float = 0.02
    redelivery_chance: float = 0.01
    resend_order_chance: float = 0.005
    erasure_chance: float = 0.001
    late_chance: float = 0.005


def history(
    customers: int,
    start: datetime,
    end: datetime,
    seed: int = 1,
    shape: HistoryShape | None = None,
    heavy_orders: int = 0,
    engagement: int = 0,
) -> list[bytes]:
    """Order events of `customers` customers between `start` and `end`, in arrival order;
    with `heavy_orders`, one customer more (`heavy`) with that many orders spread over the
    whole span, and the other customers' events exactly as without it. With `engagement`,
    the events before orders too (`_before_orders`): about that many engagement events an
    order, sign-ups, abandoned carts, and prospects who never order."""
    shape = shape or HistoryShape()
    rng = random.Random(seed)
    start_us, end_us = to_us(start), to_us(end)
    stamped: list[tuple[int, int, bytes]] = []
    for index in range(customers):
        mine = list(_customer_events(rng, index, start_us, end_us, shape))
        for arrival_us, event in mine:
            stamped.append((arrival_us, len(stamped), _encode(event)))
        if engagement:
            ordered = sorted({e["order_id"]: a for a, e in mine if e["type"] == "order.placed"}.values())
            own = random.Random(f"before-{seed}-{index}")  # its own: the orders stay as they are
            for at_us, event in _before_orders(own, f"c{index:07d}", ordered, engagement, start_us, end_us):
                stamped.append((at_us, len(stamped), _encode(event)))
    if engagement:
        for index in range(int(customers * PROSPECT_SHARE)):
            own = random.Random(f"prospect-{seed}-{index}")
            for at_us, event in _before_orders(own, f"p{index:07d}", [], engagement, start_us, end_us):
                stamped.append((at_us, len(stamped), _encode(event)))
    if heavy_orders:
        for arrival_us, event in _heavy_customer_events(seed, heavy_orders, start_us, end_us, shape):
            stamped.append((arrival_us, len(stamped), _encode(event)))
    stamped.sort()
    raws = [raw for _, _, raw in stamped]
    del stamped[:]  # the tuples go before the caller copies the lines out
    return raws


def _heavy_customer_events(
    seed: int, orders: int, start_us: int, end_us: int, shape: HistoryShape
) -> Iterator[tuple[int, dict[str, Any]]]:
    """A wholesale buyer, or a shop's guest checkouts under one id: `orders` orders at even
    gaps (jittered) from `start` to `end`, cancelled, refunded and redelivered as any."""
    rng = random.Random(f"heavy-{seed}")  # its own: the ordinary customers stay as they are
    counter = 0

    def event(kind: str, at_us: int, **fields: Any) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        return {
            "event_id": f"heavy-{counter}",
            "type": kind,
            "customer_id": "heavy",
            "occurred_at": from_us(at_us).isoformat().replace("+00:00", "Z"),
            **fields,
        }

    gap = (end_us - start_us) // orders
    for number in range(orders):
        at = start_us + number * gap + int(rng.random() * gap)
        order_id = f"heavy-{number + 1}"
        placed = event("order.placed", at, order_id=order_id, **_order_body(rng, "EUR", "eu"))
        yield from _delivered(rng, at, placed, shape)
        yield from _after_order(rng, at, order_id, placed["total"], event, shape, end_us)


def _customer_events(
    rng: random.Random, index: int, start_us: int, end_us: int, shape: HistoryShape
) -> Iterator[tuple[int, dict[str, Any]]]:
    customer_id = f"c{index:07d}"
    store_id, currency, zone = STORES[index % len(STORES)] if rng.random() < 0.9 else STORES[0]
    kind = rng.random()
    gap_days, stop_chance = None, 1.0
    if kind >= shape.one_timer_share + shape.loyal_share:
        gap_days, stop_chance = shape.occasional_gap_days, shape.occasional_stop_chance
    elif kind >= shape.one_timer_share:
        gap_days, stop_chance = shape.loyal_gap_days, shape.loyal_stop_chance
    counter = 0

    def event(kind: str, at_us: int, **fields: Any) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        local = from_us(at_us).astimezone(zone if rng.random() < 0.2 else UTC)
        return {
            "event_id": f"e{index:07d}-{counter}",
            "type": kind,
            "customer_id": customer_id,
            "occurred_at": local.isoformat().replace("+00:00", "Z"),
            **fields,
        }

    at = start_us + int(rng.random() * (end_us - start_us))
    order_no = 0
    last_at = at
    while at < end_us:
        order_no += 1
        order_id = f"o{index:07d}-{order_no}"
        placed = event("order.placed", at, order_id=order_id, **_order_body(rng, currency, store_id))
        yield from _delivered(rng, at, placed, shape)
        if rng.random() < shape.resend_order_chance:
            yield at + MINUTE_US, {**placed, "event_id": placed["event_id"] + "-resent"}
        yield from _after_order(rng, at, order_id, placed["total"], event, shape, end_us)
        last_at = at
        if gap_days is None or rng.random() < stop_chance:
            break
        at += int(rng.expovariate(1.0 / gap_days) * DAY_US) + HOUR_US
    if rng.random() < shape.erasure_chance:
        erase_at = min(last_at + 3 * DAY_US, end_us - 1)
        yield erase_at, event("customer.erased", erase_at)


def _delivered(
    rng: random.Random, at: int, event: dict[str, Any], shape: HistoryShape
) -> Iterator[tuple[int, dict[str, Any]]]:
    arrival = at + (int(rng.random() * 6 * HOUR_US) if rng.random() < shape.late_chance else 0)
    yield arrival, event
    if rng.random() < shape.redelivery_chance:
        yield arrival + int(rng.random() * MINUTE_US), event


def _after_order(
    rng: random.Random,
    at: int,
    order_id: str,
    total: dict[str, Any],
    event: Any,
    shape: HistoryShape,
    end_us: int,
) -> Iterator[tuple[int, dict[str, Any]]]:
    roll = rng.random()
    if roll < shape.cancel_chance:
        when = min(at + int(rng.random() * 2 * DAY_US), end_us - 1)
        yield from _delivered(rng, when, event("order.cancelled", when, order_id=order_id), shape)
        return
    roll -= shape.cancel_chance
    if roll < shape.partial_refund_chance + shape.full_refund_chance:
        full = roll < shape.full_refund_chance
        amount = total["amount_minor"] if full else max(1, total["amount_minor"] // 3)
        when = min(at + int((1 + rng.random() * 20) * DAY_US), end_us - 1)
        refund = event(
            "order.refunded",
            when,
            order_id=order_id,
            amount={"amount_minor": amount, "currency": total["currency"]},
        )
        yield from _delivered(rng, when, refund, shape)


def _order_body(rng: random.Random, currency: str, store_id: str) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    total = 0
    for sku, category, price in rng.sample(CATALOG, rng.choice((1, 1, 1, 2, 2, 3))):
        quantity = rng.choice((1, 1, 1, 2))
        items.append({"sku": sku, "category": category, "qty": quantity, "unit_minor": price})
        total += quantity * price
    body: dict[str, Any] = {
        "total": {"amount_minor": total, "currency": currency},
        "items": items,
        "channel": rng.choice(CHANNELS),
        "payment_method": rng.choice(PAYMENTS),
        "store_id": store_id,
    }
    if rng.random() < 0.15:
        body["coupon"] = rng.choice(("WELCOME10", "SPRING15", "FREESHIP"))
    return body


PROSPECT_SHARE = 0.3  # prospects who never order, per customer who does
SIGN_UP_SOURCES = ["newsletter", "newsletter", "account", "popup"]


def _before_orders(
    rng: random.Random, customer_id: str, orders_at: list[int], per_order: int, start_us: int, end_us: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """What a customer does besides ordering: a sign-up (most before their first order),
    `per_order` engagement events in the session before each order (products viewed, then
    the cart and the checkout), and sessions that end in a cart left behind."""
    counter = 0

    def event(event_type: str, at_us: int, **fields: Any) -> tuple[int, dict[str, Any]]:
        nonlocal counter
        counter += 1
        body = {
            "event_id": f"{customer_id}-g{counter}",
            "type": event_type,
            "customer_id": customer_id,
            "occurred_at": from_us(at_us).isoformat().replace("+00:00", "Z"),
            **fields,
        }
        return at_us, body

    first = orders_at[0] if orders_at else start_us + int(rng.random() * (end_us - start_us))
    if rng.random() < (0.6 if orders_at else 0.8):
        signed_at = max(start_us, first - int(rng.random() * 20 * DAY_US))
        yield event(
            "customer.signed_up",
            signed_at,
            email=f"{customer_id}@example.com",
            accepts_marketing=rng.random() < 0.7,
            source=rng.choice(SIGN_UP_SOURCES),
        )
    sessions = [(at, "ordered") for at in orders_at]
    # a cart left, or products looked at and nothing more: before the first order, or not
    # followed by one at all
    for ending, chance in (("cart", 0.3), ("browse", 0.3)):
        if not orders_at or rng.random() < chance:
            left_at = first - int((1 + rng.random()) * DAY_US * (2 if ending == "browse" else 1))
            sessions.append((max(start_us, min(left_at if orders_at else first, end_us - 1)), ending))
    for number, (ends_at, ending) in enumerate(sessions, start=1):
        sku, category, price = rng.choice(CATALOG)
        item = [{"sku": sku, "category": category, "qty": 1, "unit_minor": price}]
        cart = f"cart-{customer_id}-{number}"
        kinds = ["product_viewed"] * max(1, per_order - 2) + ["added_to_cart", "checkout_started"]
        if ending != "ordered":
            kinds = kinds[:-1] if ending == "cart" else kinds[:-2]
        at = ends_at - (len(kinds) + 1) * MINUTE_US
        for kind in kinds:
            at = max(start_us, at + int((0.5 + rng.random()) * MINUTE_US))
            if kind == "product_viewed":
                yield event("customer.engaged", min(at, ends_at - 1), kind=kind, items=item)
            else:
                yield event("customer.engaged", min(at, ends_at - 1), kind=kind, items=item, cart_id=cart)
