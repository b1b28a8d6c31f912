"""What windowed and `bought` conditions read of a customer, kept up to date as orders come.

`CustomerState.recent` holds (time, net amount, currency, order id) of each counted order
placed within the longest window configured, oldest first, pruned as the clock moves;
`CustomerState.bought_keys` the configured item keys (of unwindowed `bought` conditions)
that any counted order has. So an evaluation costs what the windows hold, not what a long
history holds. A new order is added in place; a cancellation, a refund or a placement seen
again may change which orders count and what they hold, and rebuilds both from the orders,
as the lifecycle aggregates are rebuilt.
"""

from __future__ import annotations

import bisect
from operator import itemgetter
from typing import TYPE_CHECKING

from .events import Item, OrderEvent, OrderPlaced

if TYPE_CHECKING:
    from .customer import CustomerState, OrderRecord
    from .segments import SegmentRules

_placed_at = itemgetter(0)


def item_keys(item: Item) -> tuple[str, ...]:
    """The keys a `bought` condition matches an item by: `sku:<sku>` and `category:<category>`."""
    if item.category is None:
        return (f"sku:{item.sku}",)
    return (f"sku:{item.sku}", f"category:{item.category}")


def note_event(
    rules: SegmentRules, customer: CustomerState, event: OrderEvent, new_order: bool, clock_us: int
) -> None:
    """Keep `recent` and `bought_keys` up to date after `event` changed the customer.

    A new order is added in place (the common path); a cancellation, refund or repeated
    placement may change which orders count and what they hold, so both are rebuilt from the
    orders, as the lifecycle aggregates are.
    """
    horizon, keys = rules.horizon, rules.unwindowed_keys
    if not horizon and not keys:
        return
    if not (new_order and isinstance(event, OrderPlaced)):
        rebuild_windows(rules, customer, clock_us)
        return
    order = customer.orders[event.order_id]
    if not order.counts() or order.placed_at is None:
        return
    if horizon and order.placed_at > clock_us - horizon:
        if customer.recent is None:
            customer.recent = []
        bisect.insort(
            customer.recent, (order.placed_at, order.total_minor, order.currency or "", event.order_id)
        )
    if keys and order.items:
        matched = _matched(keys, order)
        if matched - set(customer.bought_keys or ()):
            customer.bought_keys = sorted(matched.union(customer.bought_keys or ()))


def rebuild_windows(rules: SegmentRules, customer: CustomerState, clock_us: int) -> None:
    """`recent` and `bought_keys` from every order: after a change of counting or of rules."""
    horizon, keys = rules.horizon, rules.unwindowed_keys
    counted = [(order_id, order) for order_id, order in customer.orders.items() if order.counts()]
    recent = sorted(
        (order.placed_at, order.net_minor(), order.currency or "", order_id)
        for order_id, order in counted
        if order.placed_at is not None and horizon and order.placed_at > clock_us - horizon
    )
    customer.recent = recent or None
    matched: set[str] = set()
    if keys:
        for _, order in counted:
            matched |= _matched(keys, order)
        if customer.folded is not None:  # what folded orders matched when they were folded
            matched.update(customer.folded.bought_keys or ())
    customer.bought_keys = sorted(matched) or None


def matched_keys(rules: SegmentRules, order: OrderRecord) -> set[str]:
    """The item keys of unwindowed `bought` conditions a counted order matches."""
    keys = rules.unwindowed_keys
    return _matched(keys, order) if keys and order.counts() else set()


def _matched(keys: frozenset[str], order: OrderRecord) -> set[str]:
    return {k for item in order.items or () for k in item_keys(item) if k in keys}


def prune_windows(customer: CustomerState, before_us: int) -> None:
    """Drop orders placed at or before `before_us`: they are in no window from now on."""
    recent = customer.recent
    if not recent or recent[0][0] > before_us:
        return
    del recent[: bisect.bisect_right(recent, before_us, key=_placed_at)]
    if not recent:
        customer.recent = None
