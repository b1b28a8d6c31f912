"""A live stream of events stamped with the current time, for the demo.

New customers often sign up first and put something in their cart; most then place a first
order, some leave the cart; some come back after a while; a few orders are cancelled. With
the demo's short windows, every kind of transition and trigger shows within a minute.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

from ..lifecycle.instants import format_rfc3339
from .generate import CATALOG, CHANNELS, PAYMENTS


def live_orders(seed: int | None = None, returning_share: float = 0.35) -> Iterator[dict[str, Any]]:
    """An endless stream of order events at the wall clock's time."""
    rng = random.Random(seed)
    run = f"{int(time.time()) % 100000:05d}"
    customers: list[str] = []
    orders: list[tuple[str, str, int]] = []
    serial = 0
    while True:
        serial += 1
        now = format_rfc3339(time.time_ns() // 1000)
        roll = rng.random()
        if orders and roll < 0.04:
            customer, order_id, _ = orders.pop(rng.randrange(len(orders)))
            yield {
                "type": "order.cancelled",
                "event_id": f"d{run}-{serial}",
                "customer_id": customer,
                "occurred_at": now,
                "order_id": order_id,
            }
            continue
        sku, category, price = rng.choice(CATALOG)
        item = {"sku": sku, "category": category, "qty": 1, "unit_minor": price}
        if customers and roll < 0.04 + returning_share:
            customer = rng.choice(customers)
        else:
            customer = f"demo-{run}-{len(customers) + 1:04d}"
            customers.append(customer)
            if rng.random() < 0.6:
                yield _before_order(customer, "customer.signed_up", f"s{run}-{serial}", source="popup")
            yield _before_order(
                customer,
                "customer.engaged",
                f"g{run}-{serial}",
                kind="added_to_cart",
                items=[item],
                cart_id=f"cart-{run}-{serial}",
            )
            if rng.random() < 0.3:  # the cart left behind
                continue
        order_id = f"o{run}-{serial}"
        orders.append((customer, order_id, price))
        yield {
            "type": "order.placed",
            "event_id": f"d{run}-{serial}",
            "customer_id": customer,
            "occurred_at": now,
            "order_id": order_id,
            "total": {"amount_minor": price, "currency": "EUR"},
            "items": [item],
            "channel": rng.choice(CHANNELS),
            "payment_method": rng.choice(PAYMENTS),
            "coupon": "WELCOME10" if rng.random() < 0.2 else None,
            "store_id": "demo",
        }


def _before_order(customer: str, event_type: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": format_rfc3339(time.time_ns() // 1000),
        **fields,
    }
