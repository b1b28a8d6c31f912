"""A customer's counted orders as the models read them: purchase days.

Purchase days as the core counts them (`stream/lifecycle/purchase_days.py`). A customer's
history at an instant T is (x, t_x, T): x repeat purchase days, the last one's time t_x and
the time T, measured from the first purchase in the model's time unit. The value of a
purchase day is the net value of its orders in the model's currency, in major units.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from ..lifecycle import CustomerState
from ..lifecycle.instants import DAY_US
from ..lifecycle.money import to_major_units
from ..lifecycle.purchase_days import purchase_days

TIME_UNITS = {"day": DAY_US, "week": 7 * DAY_US}


@dataclass(frozen=True, slots=True)
class History:
    """One customer at an instant: the models' (x, t_x, T), and the mean value of the repeat
    purchase days (None without any, or when one has no order in the model's currency)."""

    x: int
    t_x: float
    T: float
    mean_repeat_value: float | None


@dataclass
class Histories:
    """The customers with at least one counted order at T, as arrays' worth of columns."""

    customer_ids: list[str] = field(default_factory=list)
    x: list[int] = field(default_factory=list)
    t_x: list[float] = field(default_factory=list)
    T: list[float] = field(default_factory=list)
    mean_repeat_value: list[float | None] = field(default_factory=list)

    def add(self, customer_id: str, history: History) -> None:
        self.customer_ids.append(customer_id)
        self.x.append(history.x)
        self.t_x.append(history.t_x)
        self.T.append(history.T)
        self.mean_repeat_value.append(history.mean_repeat_value)


def history(customer: CustomerState, at_us: int, unit_us: int, currency: str | None) -> History | None:
    """The customer's history at `at_us` from their counted orders placed by then; None
    without any."""
    days = purchase_days(customer, at_us)
    if not days:
        return None
    first = days[0][0]
    repeat = days[1:]
    mean_value = None
    if repeat and currency is not None and all(currency in values for _, values in repeat):
        total_minor = sum(values[currency] for _, values in repeat)
        mean_value = float(Decimal(to_major_units(total_minor, currency))) / len(repeat)
    return History(
        x=len(repeat),
        t_x=(days[-1][0] - first) / unit_us,
        T=(at_us - first) / unit_us,
        mean_repeat_value=mean_value,
    )


def histories(
    customers: Iterable[CustomerState], at_us: int, unit_us: int, currency: str | None
) -> Histories:
    found = Histories()
    for customer in customers:
        one = history(customer, at_us, unit_us, currency)
        if one is not None:
            found.add(customer.customer_id, one)
    return found


def main_currency(customers: Iterable[CustomerState], at_us: int) -> str | None:
    """The currency most counted orders placed by `at_us` are in."""
    seen: Counter[str] = Counter(
        order.currency
        for customer in customers
        for order in customer.orders.values()
        if order.currency and order.placed_at is not None and order.placed_at <= at_us and order.counts()
    )
    return seen.most_common(1)[0][0] if seen else None
