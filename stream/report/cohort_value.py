"""What a cohort's customers have been worth: per monthly cohort (the UTC month of the first
counted order), the cumulative net revenue per customer 1, 3, 6, 12 and 24 months after each
customer's first order, per currency.

A horizon is given only where the whole period is seen for every customer of the cohort (the
cohort's last instant plus the months is at or before `T`); else it is null. Revenue is the
net (less refunds) of the counted orders placed from the first order up to, not including,
the same instant that many calendar months later (a day past the month's end is clamped to it).
Orders folded into a heavy customer's totals count in full at every horizon past the folded
orders' newest.
"""

from __future__ import annotations

import calendar
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..lifecycle import CustomerState
from ..lifecycle.instants import from_us, to_us
from ..lifecycle.money import to_major_units
from .experiments import counted_orders

HORIZONS = (1, 3, 6, 12, 24)


def cohort_value(customers: Iterable[CustomerState], until_us: int) -> dict[str, dict[str, Any]]:
    sizes: Counter[str] = Counter()
    # cohort -> horizon -> currency -> net revenue
    revenue: dict[str, dict[int, Counter[str]]] = defaultdict(lambda: {k: Counter() for k in HORIZONS})
    for customer in customers:
        counted = counted_orders(customer, until_us)
        if not counted:
            continue
        folded = customer.folded
        first = counted[0][0]
        if folded is not None and customer.first_order_at is not None:  # the first may be folded
            first = min(first, customer.first_order_at)
        cohort = _month(first)
        sizes[cohort] += 1
        for k in HORIZONS:
            end = months_after(first, k)
            totals = revenue[cohort][k]
            for at, net, currency in counted:
                if at >= end:
                    break
                totals[currency] += net
            if folded is not None and folded.through < end:
                totals.update(folded.spend)
    result = {}
    for cohort in sorted(sizes):
        seen_to = _month_end(cohort)
        result[cohort] = {
            "customers": sizes[cohort],
            "revenue_per_customer": {
                currency: {
                    str(k): float(
                        to_major_units(round(revenue[cohort][k][currency] / sizes[cohort]), currency)
                    )
                    if months_after(seen_to, k) <= until_us
                    else None
                    for k in HORIZONS
                }
                for currency in sorted({c for k in HORIZONS for c in revenue[cohort][k]})
            },
        }
    return result


def _per_customer(total_minor: int, customers: int, currency: str) -> float:
    return float(to_major_units(round(total_minor / customers), currency))


def months_after(at_us: int, months: int) -> int:
    """The same instant `months` calendar months later (the day clamped to the month's end)."""
    moment = from_us(at_us)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return to_us(moment.replace(year=year, month=month, day=day))


def _month(at_us: int) -> str:
    return from_us(at_us).strftime("%Y-%m")


def _month_end(cohort: str) -> int:
    """The first instant after the cohort's month."""
    year, month = map(int, cohort.split("-"))
    return to_us(datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC))
