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

import hashlib
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING

import msgspec

from .events import OrderCancelled, OrderEvent, OrderPlaced, OrderRefunded
from .instants import format_rfc3339

if TYPE_CHECKING:
    from .customer import CustomerState, OrderRecord


DEFAULT_ORDERS_KEPT = 250
# the ids of the orders folded last that a customer remembers, per order kept: a folded order
# placed again is known by them (eight bytes each: 8 KB a customer at the default)
FOLDED_KEYS_KEPT = 4
DEFAULT_REFUNDS_KEPT = 100
# items a customer keeps per order kept, on average: orders of hundreds of items (a wholesale
# basket) fold sooner, so that a record stays far below Kafka's message size
ITEMS_PER_ORDER_KEPT = 8


class FoldedOrders(msgspec.Struct, array_like=True, gc=False):
    """What a customer's folded orders still give. New fields go at the end, with a default."""

    orders: int  # how many were folded
    counted: int  # of which counted when folded
    spend: dict[str, int]  # their net spend by currency
    through: int  # the time of the newest folded order
    latest_counted: int | None = None  # the time of the newest counted one
    # the item keys of unwindowed `bought` conditions they matched, under the rules then
    bought_keys: list[str] | None = None
    # the order ids folded last (`order_key`s, oldest first, FOLDED_KEYS_KEPT per order
    # kept): one of them placed again is known as folded, whenever it is dated
    recent_keys: list[int] | None = None


def order_key(order_id: str) -> int:
    """An order id in eight bytes, the same in every process (Python's `hash` is not)."""
    return int.from_bytes(hashlib.blake2b(order_id.encode(), digest_size=8).digest(), "big")


def folded_reason(customer: CustomerState, event: OrderEvent, at_us: int, orders_kept: int) -> str | None:
    """Why `event` cannot be applied to a customer whose oldest orders are folded (or who
    holds `orders_kept` orders already); None when it can."""
    folded = customer.folded
    if isinstance(event, OrderPlaced):
        held = customer.orders.get(event.order_id)
        if held is not None:
            first = folded is not None and event.order_id == customer.first_order_id
            if first and folded is not None and _placement_stops_counting(held, event, at_us):
                return _first_reason(event.order_id, folded, orders_kept)
            return None
        if folded is None:
            return None
        if at_us <= folded.through:
            return (
                f"order {event.order_id} is placed at or before {format_rfc3339(folded.through)}, the "
                f"newest of the customer's {folded.orders} folded orders, and may be one of them "
                f"(limits.orders_kept = {orders_kept})"
            )
        if folded.recent_keys and order_key(event.order_id) in folded.recent_keys:
            return (
                f"order {event.order_id} is one of the customer's {folded.orders} folded orders, placed "
                f"again (limits.orders_kept = {orders_kept})"
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
        return _first_reason(event.order_id, folded, orders_kept)
    return None


def refunds_reason(customer: CustomerState, event: OrderEvent, refunds_kept: int) -> str | None:
    """Why a refund cannot be kept: its order holds `refunds_kept` refunds already (they are
    kept one by one, by event id, so that a refund sent again counts once)."""
    if not isinstance(event, OrderRefunded):
        return None
    order = customer.orders.get(event.order_id)
    refunds = order.refunds if order is not None else None
    if refunds is None or len(refunds) < refunds_kept or event.event_id in refunds:
        return None
    return (
        f"order {event.order_id} has {len(refunds)} refunds, the most kept of an order "
        f"(limits.refunds_per_order = {refunds_kept})"
    )


def _first_reason(order_id: str, folded: FoldedOrders, orders_kept: int) -> str:
    return (
        f"order {order_id} is the customer's first, and would stop counting; the order that would "
        f"be first instead may be one of their {folded.orders} folded orders "
        f"(limits.orders_kept = {orders_kept})"
    )


def _placement_stops_counting(order: OrderRecord, event: OrderPlaced, at_us: int) -> bool:
    """Whether a placement of a held order would replace it (an earlier one wins) with one
    that does not count: its refunds reach the new total, or are in its currency only now."""
    if order.placed_at is not None and (at_us, event.event_id) >= (
        order.placed_at,
        order.placed_event_id or "",
    ):
        return False  # the same order placed again later: nothing changes
    if order.cancelled or not order.counts():
        return False  # it does not count now: nothing to stop
    currency, total = event.total.currency, event.total.amount_minor
    refunded = sum(amount for amount, paid_in in (order.refunds or {}).values() if paid_in == currency)
    return bool(order.refunds) and refunded >= total


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
    than `orders_kept` orders and a tenth, or more than ITEMS_PER_ORDER_KEPT items an order
    of those and a tenth; returns how many were folded."""
    orders = customer.orders
    items_kept = ITEMS_PER_ORDER_KEPT * orders_kept
    items = sum(len(order.items) for order in orders.values() if order.items)
    if len(orders) <= orders_kept + orders_kept // 10 and items <= items_kept + items_kept // 10:
        return 0
    first = customer.first_order_id
    placed = sorted(
        (order.placed_at, order_id)
        for order_id, order in orders.items()
        if order.placed_at is not None and order_id != first
    )
    chosen = []
    held = len(orders)
    for placed_at, order_id in placed:
        if held <= orders_kept and items <= items_kept:
            break
        chosen.append((placed_at, order_id))
        held -= 1
        items -= len(orders[order_id].items or ())
    if not chosen:
        return 0  # cancellations and refunds waiting for their orders: bounded by folded_reason
    folded = customer.folded or FoldedOrders(orders=0, counted=0, spend={}, through=chosen[0][0])
    spend = dict(folded.spend)
    counted, latest, keys = folded.counted, folded.latest_counted, set(folded.bought_keys or ())
    recent_keys = [*(folded.recent_keys or ()), *(order_key(order_id) for _, order_id in chosen)]
    for placed_at, order_id in chosen:
        order = orders.pop(order_id)
        keys |= matched(order)
        if order.counts():
            counted += 1
            assert order.currency is not None
            spend[order.currency] = spend.get(order.currency, 0) + order.net_minor()
            latest = placed_at if latest is None else max(latest, placed_at)
    customer.folded = FoldedOrders(
        orders=folded.orders + len(chosen),
        counted=counted,
        spend=spend,
        through=max(folded.through, chosen[-1][0]),
        latest_counted=latest,
        bought_keys=sorted(keys) or None,
        recent_keys=recent_keys[-FOLDED_KEYS_KEPT * orders_kept :],
    )
    if customer.recent:
        gone = set(map(_order_id, chosen))
        customer.recent = [entry for entry in customer.recent if entry[3] not in gone] or None
    return len(chosen)


_order_id = itemgetter(1)
