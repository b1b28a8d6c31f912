"""Segment conditions compiled to checks (docs/segments.md): each gives whether its condition
holds for a customer at an instant, and the first later instant at which time alone may
change that, so that the partition's deadline index can fire the customer then.

`Facts` is what the checks read of one customer at one instant; windowed conditions read
`CustomerState.recent` (see segment_windows.py), so their cost follows the orders in the
windows, not the length of the history.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING

from .policy import State
from .purchase_days import purchase_days
from .segment_windows import item_keys

if TYPE_CHECKING:
    from .customer import CustomerState, RecentOrder
    from .segments import Conditions, ScoreCrossings

Check = Callable[["Facts"], tuple[bool, int | None]]


def segment_check(conditions: Conditions) -> Check:
    """One check for a segment: its condition's own when it has one (most do), else all."""
    checks = _checks(conditions)
    if len(checks) == 1:
        return checks[0]
    return lambda facts: _all_hold(checks, facts)


def _all_hold(checks: tuple[Check, ...], facts: Facts) -> tuple[bool, int | None]:
    """All conditions hold; and the earliest instant that may change the segment's answer.

    In: the first instant one of its conditions may stop holding. Out: no failing condition
    can hold before its own flip, so the segment not before the latest of those; and never
    by time alone if one of them never can.
    """
    first_out: int | None = None
    last_in: int | None = None
    failing = False
    for check in checks:
        holds, flip = check(facts)
        if holds:
            if flip is not None and (first_out is None or flip < first_out):
                first_out = flip
            continue
        if flip is None:
            return _NEVER
        failing = True
        if last_in is None or flip > last_in:
            last_in = flip
    return (False, last_in) if failing else (True, first_out)


_NEVER: tuple[bool, int | None] = (False, None)


class Facts:
    """What the conditions read of one customer at one instant.

    `recent` is `CustomerState.recent`: (placed_at, net amount, currency, order_id) of each
    counted order in the longest window, oldest first.
    """

    __slots__ = (
        "at",
        "bought_keys",
        "count",
        "customer",
        "deadline",
        "first",
        "last",
        "model",
        "orders",
        "recent",
        "spend",
        "state",
        "window_starts",
    )

    def __init__(
        self, customer: CustomerState, at: int, lifecycle_deadline: int | None, model: ScoreCrossings | None
    ) -> None:
        self.at = at
        self.customer = customer
        self.model = model
        self.count = customer.order_count
        self.first = customer.first_order_at
        self.last = customer.last_order_at
        self.state = customer.state
        self.deadline = lifecycle_deadline
        self.spend = customer.spend
        self.bought_keys = customer.bought_keys or ()
        self.recent = customer.recent or _EMPTY
        self.orders = customer.orders
        # window -> where it starts in `recent`: several segments (A/B/C classes) share one
        self.window_starts: dict[int, int] = {}

    def window_start(self, window: int) -> int:
        start = self.window_starts.get(window)
        if start is None:
            start = self.window_starts[window] = bisect.bisect_right(
                self.recent, self.at - window, key=_placed_at
            )
        return start


_EMPTY: list[RecentOrder] = []
_placed_at = itemgetter(0)


# -- conditions, compiled to checks ---------------------------------------------------------
# Each check gives (holds, flip): whether its condition holds at `facts.at`, and the first
# later instant at which time alone may change that (None: never by time alone).


def _checks(c: Conditions) -> tuple[Check, ...]:
    checks: list[Check] = []
    if c.orders_over is not None:
        checks.append(_orders_over(c.orders_over, c.orders_within))
    if c.spend_over is not None:
        checks.append(_spend_over(c.spend_over, c.spend_currency or "", c.spend_within))
    if c.first_order_within is not None:
        checks.append(_first_order_within(c.first_order_within))
    if c.last_order_within is not None:
        checks.append(_last_order_within(c.last_order_within))
    if c.no_order_within is not None:
        checks.append(_no_order_within(c.no_order_within))
    if c.bought:
        checks.append(_bought(c.bought, c.bought_within))
    if c.state:
        checks.append(_state_in(c.state))
    if c.overdue is not None:
        checks.append(_overdue(c.overdue))
    if c.p_alive_below is not None:
        checks.append(_p_alive_below(c.p_alive_below))
    if c.expected_value_over is not None:
        checks.append(_expected_value_over(c.expected_value_over))
    if c.signed_up_within is not None:
        checks.append(_signed_up_within(c.signed_up_within))
    if c.engaged:
        checks.append(_engaged(c.engaged, c.engaged_within))
    return tuple(checks)


def _orders_over(count: int, window: int | None) -> Check:
    if window is None:
        return lambda f: (f.count > count, None)

    def check(f: Facts) -> tuple[bool, int | None]:
        recent = f.recent
        start = bisect.bisect_right(recent, f.at - window, key=_placed_at)
        inside = len(recent) - start
        if inside <= count:
            return _NEVER
        # holds until enough of the oldest have left the window to leave `count`
        return True, recent[start + inside - count - 1][0] + window

    return check


def _spend_over(amount: int, currency: str, window: int | None) -> Check:
    if window is None:
        return lambda f: (f.spend.get(currency, 0) > amount, None)

    def check(f: Facts) -> tuple[bool, int | None]:
        # Orders leave the window oldest first, so the sum stays over `amount` until the
        # newest of those without which the newer ones are not over it leaves. Found walking
        # from the newest: the walk stops at the amount, not at the window's start, so a
        # customer with thousands of orders in the window costs what the amount needs.
        recent, start, total = f.recent, f.window_start(window), 0
        for index in range(len(recent) - 1, start - 1, -1):
            placed_at, net, paid_in, _ = recent[index]
            if paid_in == currency:
                total += net
                if total > amount:
                    return True, placed_at + window
        return _NEVER

    return check


def _first_order_within(window: int) -> Check:
    def check(f: Facts) -> tuple[bool, int | None]:
        first = f.first
        if first is not None and f.at - first < window:
            return True, first + window
        return _NEVER

    return check


def _last_order_within(window: int) -> Check:
    def check(f: Facts) -> tuple[bool, int | None]:
        last = f.last
        if last is not None and f.at - last < window:
            return True, last + window
        return _NEVER

    return check


def _no_order_within(window: int) -> Check:
    def check(f: Facts) -> tuple[bool, int | None]:
        last = f.last
        if last is None:
            return _NEVER
        if f.at - last >= window:
            return True, None
        return False, last + window

    return check


def _bought(keys: frozenset[str], window: int | None) -> Check:
    if window is None:
        return lambda f: (not keys.isdisjoint(f.bought_keys), None)

    def check(f: Facts) -> tuple[bool, int | None]:
        recent, orders = f.recent, f.orders
        start = bisect.bisect_right(recent, f.at - window, key=_placed_at)
        for i in range(len(recent) - 1, start - 1, -1):  # newest first: the last to leave
            placed_at, _, _, order_id = recent[i]
            bought = orders[order_id].items
            if bought and any(k in keys for item in bought for k in item_keys(item)):
                return True, placed_at + window
        return _NEVER

    return check


def _state_in(states: frozenset[State]) -> Check:
    return lambda f: (f.state in states, f.deadline)


def _overdue(factor: float) -> Check:
    """At least 3 purchase days, and longer since the last order than `factor` times the
    mean interval between purchase days: late on the customer's own rhythm."""

    def check(f: Facts) -> tuple[bool, int | None]:
        days = purchase_days(f.customer)
        if len(days) < 3 or f.last is None:
            return _NEVER
        mean_interval = (days[-1][0] - days[0][0]) / (len(days) - 1)
        due = f.last + int(factor * mean_interval)  # overdue strictly after it
        if f.at > due:
            return True, None
        return False, due + 1

    return check


def _p_alive_below(threshold: float) -> Check:
    def check(f: Facts) -> tuple[bool, int | None]:
        assert f.model is not None, "config checks that p_alive_below has a model"
        crossing = f.model.p_alive_below_from(f.customer, threshold)
        if crossing is None:
            return _NEVER
        return (True, None) if f.at >= crossing else (False, crossing)

    return check


def _expected_value_over(amount: float) -> Check:
    def check(f: Facts) -> tuple[bool, int | None]:
        assert f.model is not None, "config checks that expected_value_over has a model"
        crossing = f.model.value_at_most_from(f.customer, amount)
        if crossing is None or f.at >= crossing:
            return _NEVER
        return True, crossing

    return check


def _signed_up_within(window: int) -> Check:
    def check(f: Facts) -> tuple[bool, int | None]:
        signed_up = f.customer.signed_up_at
        if signed_up is not None and f.at - signed_up < window:
            return True, signed_up + window
        return _NEVER

    return check


def _engaged(keys: frozenset[str], window: int | None) -> Check:
    def check(f: Facts) -> tuple[bool, int | None]:
        engaged = f.customer.engaged
        latest = max((at for key, at in engaged.items() if key in keys), default=None) if engaged else None
        if latest is None:
            return _NEVER
        if window is None:
            return True, None
        if f.at - latest < window:
            return True, latest + window
        return _NEVER

    return check
