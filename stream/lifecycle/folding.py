"""A customer's oldest orders folded into totals, so that what a customer costs stays bounded.

A wholesale buyer, or a shop's guest checkouts under one id, places tens of thousands of
orders. Kept one by one, each event would cost more as the history grew (aggregates and
windows rebuilt from every order) and the worker's stored record, rewritten after every
event, would grow with it, towards Kafka's message limit. So a customer keeps at most
`orders_kept` orders in detail; past a tenth more (so that folding runs once in many orders,
not at each), the oldest placed orders but the first counted one are folded: they still
count (order count, spend, the last order), and can no longer change.

The rules (docs/lifecycle.md, "Customers with many orders"):
- an event that would need a folded order is rejected, with the reason (`folded_reason`):
  a placement of an order the customer does not hold, dated at or before the newest folded
  order (it may be one of them, sent again); a cancellation or refund of an order the
  customer does not hold (it may be a folded one); one that would make the first order stop
  counting (the one that could replace it may be folded);
- a customer who does not hold an order may hold `orders_kept` cancellations and refunds
  waiting for their orders, no more: a further one is rejected;
- windowed segment conditions, the `overdue` condition and the model read the kept orders;
  unwindowed `bought` conditions also the item keys folded orders matched when folded.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING

import msgspec

from .events import OrderCancelled, OrderEvent, OrderPlaced, OrderRefunded
from .instants import format_rfc3339

if TYPE_CHECKING:
    from .customer import CustomerState, OrderRecord


DEFAULT_ORDERS_KEPT = 250


class FoldedOrders(msgspec.Struct, array_like=True, gc=False):
    """What a customer's folded orders still give. New fields go at the end, with a default."""

    orders: int  # how many were folded
    counted: int  # of which counted when folded
    spend: dict[str, int]  # their net spend by currency
    through: int  # the time of the newest folded order
    latest_counted: int | None = None  # the time of the newest counted one
    # the item keys of unwindowed `bought` conditions they matched, under the rules then
    bought_keys: list[str] | None = None


def folded_reason(customer: CustomerState, event: OrderEvent, at_us: int, orders_kept: int) -> str | None:
    """Why `event` cannot be applied to a customer whose oldest orders are folded (or who
    holds `orders_kept` orders already); None when it can."""
    folded = customer.folded
    if isinstance(event, OrderPlaced):
        if folded is not None and at_us <= folded.through and event.order_id not in customer.orders:
            return (
                f"order {event.order_id} is placed at or before {format_rfc3339(folded.through)}, the "
                f"newest of the customer's {folded.orders} folded orders, and may be one of them "
                f"(limits.orders_kept = {orders_kept})"
            )
        return None
    if not isinstance(event, OrderCancelled | OrderRefunded):
        return None
    order = customer.orders.get(event.order_id)
    if order is None:
        if folded is not None:
            return (
                f"order {event.order_id} is not among the customer's kept orders; it may be one of "
                f"their {folded.orders} folded orders (limits.orders_kept = {orders_kept})"
            )
        if len(customer.orders) >= orders_kept:
            return (
                f"the customer holds {len(customer.orders)} orders, the most kept "
                f"(limits.orders_kept = {orders_kept}); order {event.order_id} is not among them"
            )
        return None
    if folded is not None and event.order_id == customer.first_order_id and _stops_counting(order, event):
        return (
            f"order {event.order_id} is the customer's first, and would stop counting; the order that "
            f"would be first instead may be one of their {folded.orders} folded orders "
            f"(limits.orders_kept = {orders_kept})"
        )
    return None


def _stops_counting(order: OrderRecord, event: OrderCancelled | OrderRefunded) -> bool:
    if not order.counts():
        return False
    if isinstance(event, OrderCancelled):
        return True
    if order.refunds is not None and event.event_id in order.refunds:
        return False  # the same refund again changes nothing
    same = event.amount.currency == order.currency
    return same and order.refunded_minor() + event.amount.amount_minor >= order.total_minor


def fold_oldest(customer: CustomerState, orders_kept: int, matched: Callable[[OrderRecord], set[str]]) -> int:
    """Fold the oldest placed orders (but the first counted one) of a customer holding more
    than `orders_kept` and a tenth; returns how many were folded."""
    orders = customer.orders
    if len(orders) <= orders_kept + orders_kept // 10:
        return 0
    first = customer.first_order_id
    placed = sorted(
        (order.placed_at, order_id)
        for order_id, order in orders.items()
        if order.placed_at is not None and order_id != first
    )
    chosen = placed[: len(orders) - orders_kept]
    if not chosen:
        return 0  # cancellations and refunds waiting for their orders: bounded by folded_reason
    folded = customer.folded or FoldedOrders(orders=0, counted=0, spend={}, through=chosen[0][0])
    spend = dict(folded.spend)
    counted, latest, keys = folded.counted, folded.latest_counted, set(folded.bought_keys or ())
    for placed_at, order_id in chosen:
        order = orders.pop(order_id)
        keys |= matched(order)
        if order.counts():
            counted += 1
            assert order.currency is not None
            spend[order.currency] = spend.get(order.currency, 0) + order.total_minor - order.refunded_minor()
            latest = placed_at if latest is None else max(latest, placed_at)
    customer.folded = FoldedOrders(
        orders=folded.orders + len(chosen),
        counted=counted,
        spend=spend,
        through=max(folded.through, chosen[-1][0]),
        latest_counted=latest,
        bought_keys=sorted(keys) or None,
    )
    if customer.recent:
        gone = set(map(_order_id, chosen))
        customer.recent = [entry for entry in customer.recent if entry[3] not in gone] or None
    return len(chosen)


_order_id = itemgetter(1)
