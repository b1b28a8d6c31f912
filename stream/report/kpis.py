"""Retention KPIs of a shop at an instant `T`, from the customers a replay leaves.

Definitions (docs/kpis.md has them for readers):
- `customers`: customers with at least one counted order at `T`; `repeat_customers`: two or
  more; `repeat_purchase_rate`: the second over the first.
- `second_purchase_within_window`: `eligible`, customers whose first counted order is at
  least one one-timer window (their store's) before `T`; `converted`, those of them whose
  second counted order came before first + window; `rate`, the share.
- `days_to_second_purchase`: days from the first to the second counted order, over customers
  with a second one: quartiles and the 80th percentile (linear between ranks).
- `states`: customers by lifecycle state at `T`.
- `cohorts`, by UTC month (`YYYY-MM`) of the first counted order: `customers`,
  `converted_within_window` (second counted order before first + window), and `retention`:
  for k = 1, 2, ... up to the month of `T`, the share of the cohort with a counted order in
  the k-th calendar month after the cohort's month.
- `second_purchase_drivers` and `conversion_curves`: `second_purchase.py`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from ..lifecycle import CustomerState
from ..lifecycle.instants import DAY_US
from .second_purchase import FirstOrder, conversion_curves, drivers

CURVE_DAYS = 180  # conversion curves run this many days from the first order


def kpis(
    customers: Iterable[CustomerState], until_us: int, window_us: Callable[[CustomerState], int]
) -> dict[str, Any]:
    """The KPIs at `until_us`; `window_us(customer)`: the one-timer window of the customer's store."""
    states: Counter[str] = Counter()
    buyers = repeat = eligible = converted = 0
    days_to_second: list[float] = []
    cohorts: dict[str, _Cohort] = {}
    first_orders: list[FirstOrder] = []
    firsts_and_seconds: list[tuple[str, int, int | None]] = []
    last_month = _month(until_us)
    for customer in customers:
        states[customer.state.value] += 1
        counted = sorted(
            (o for o in customer.orders.values() if (at := o.counted_at()) is not None and at <= until_us),
            key=lambda order: order.placed_at or 0,
        )
        if not counted:
            continue
        times = [order.placed_at or 0 for order in counted]
        buyers += 1
        first = times[0]
        window = window_us(customer)
        in_window = len(times) > 1 and times[1] < first + window
        if len(times) > 1:
            repeat += 1
            days_to_second.append((times[1] - first) / DAY_US)
        if first + window <= until_us:
            eligible += 1
            converted += in_window
            first_orders.append(FirstOrder(counted[0], in_window))
        firsts_and_seconds.append((_month(first), first, times[1] if len(times) > 1 else None))
        cohort = cohorts.setdefault(_month(first), _Cohort())
        cohort.customers += 1
        cohort.converted += in_window
        first_month = _month(first)
        for k in {_months_between(first_month, _month(t)) for t in times[1:]} - {0}:
            cohort.active[k] += 1
    return {
        "until": datetime.fromtimestamp(until_us / 1e6, UTC).isoformat().replace("+00:00", "Z"),
        "customers": buyers,
        "repeat_customers": repeat,
        "repeat_purchase_rate": _share(repeat, buyers),
        "second_purchase_within_window": {
            "eligible": eligible,
            "converted": converted,
            "rate": _share(converted, eligible),
        },
        "days_to_second_purchase": {
            name: _percentile(sorted(days_to_second), q)
            for name, q in (("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("p80", 0.8))
        },
        "states": dict(sorted(states.items())),
        "cohorts": {
            month: {
                "customers": c.customers,
                "converted_within_window": c.converted,
                "retention": {
                    str(k): _share(c.active[k], c.customers)
                    for k in range(1, _months_between(month, last_month) + 1)
                },
            }
            for month, c in sorted(cohorts.items())
        },
        "second_purchase_drivers": drivers(first_orders),
        "conversion_curves": conversion_curves(firsts_and_seconds, until_us, CURVE_DAYS),
    }


class _Cohort:
    def __init__(self) -> None:
        self.customers = 0
        self.converted = 0
        self.active: Counter[int] = Counter()  # months after the first: customers with an order


def _month(at_us: int) -> str:
    return _month_of_day(at_us // DAY_US)


@functools.cache  # a few thousand days; formatting each order's was a tenth of a report
def _month_of_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m")


def _months_between(earlier: str, later: str) -> int:
    (y0, m0), (y1, m1) = (map(int, earlier.split("-")), map(int, later.split("-")))
    return (y1 - y0) * 12 + (m1 - m0)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percentile(ordered: list[float], q: float) -> float | None:
    """Linear between the closest ranks (numpy's default)."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
