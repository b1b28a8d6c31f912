"""Purchase days: a customer's counted orders by UTC calendar day.

The convention of the customer-base models (docs/model.md): several orders on one day are
one purchase, worth their sum, at the time of the day's first order. The `overdue` segment
condition and the model both read a customer's rhythm from these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .instants import DAY_US

if TYPE_CHECKING:
    from .customer import CustomerState

# (time of the day's first counted order, net value by currency in minor units)
PurchaseDay = tuple[int, dict[str, int]]


def purchase_days(customer: CustomerState, until_us: int | None = None) -> list[PurchaseDay]:
    """The customer's purchase days, oldest first, from counted orders placed by `until_us`
    (all of them without it). Costs one pass over the customer's orders."""
    days: dict[int, PurchaseDay] = {}
    for order in customer.orders.values():
        placed = order.placed_at
        if placed is None or (until_us is not None and placed > until_us) or not order.counts():
            continue
        day = days.get(placed // DAY_US)
        if day is None:
            day = days[placed // DAY_US] = (placed, {})
        elif placed < day[0]:
            day = days[placed // DAY_US] = (placed, day[1])
        if order.currency is not None:
            net = order.net_minor()
            day[1][order.currency] = day[1].get(order.currency, 0) + net
    return [days[key] for key in sorted(days)]
