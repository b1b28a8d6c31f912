"""Segments and classes: the rules of docs/segments.md as plain functions and data.

A customer is in a segment at instant `t` when every one of its conditions holds; membership
is a pure function of the customer's counted orders, their lifecycle state at `t`, and `t`.
Besides membership, evaluation gives the first instant after `t` at which time alone may
change it (an order leaving a window, a window running out, a lifecycle deadline): the
partition's deadline index fires the customer then, as it does for lifecycle deadlines.

Windowed conditions read `CustomerState.recent`, the counted orders placed within the
longest window (kept sorted and pruned by segment_windows.py), so the cost of an evaluation depends on the
orders in the windows, not on the length of a customer's history. Unwindowed `bought`
conditions read `CustomerState.bought_keys`, the configured item keys any counted order has.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple, Protocol

from .policy import State
from .purchase_days import purchase_days
from .segment_windows import item_keys, prune_windows

if TYPE_CHECKING:
    from .customer import CustomerState, RecentOrder


@dataclass(frozen=True, slots=True)
class Conditions:
    """The conditions of one segment; None (or empty) means the condition is not used.

    Durations are microseconds, amounts minor units of `spend_currency`.
    """

    orders_over: int | None = None
    orders_within: int | None = None
    spend_over: int | None = None
    spend_currency: str | None = None
    spend_within: int | None = None
    first_order_within: int | None = None
    last_order_within: int | None = None
    no_order_within: int | None = None
    bought: frozenset[str] = frozenset()
    bought_within: int | None = None
    state: frozenset[State] = frozenset()
    # on the customer's own rhythm and the customer-base model (docs/model.md)
    overdue: float | None = None  # times the mean interval between purchase days
    p_alive_below: float | None = None
    expected_value_over: float | None = None  # major units of the model's currency
    expected_value_currency: str | None = None

    def uses_model(self) -> bool:
        return self.p_alive_below is not None or self.expected_value_over is not None

    def is_empty(self) -> bool:
        return (
            not self.uses_model()
            and self.overdue is None
            and self.orders_over is None
            and self.spend_over is None
            and self.first_order_within is None
            and self.last_order_within is None
            and self.no_order_within is None
            and not self.bought
            and not self.state
        )

    def windows(self) -> list[int]:
        """The windows that read individual orders (those kept in `recent`)."""
        found = [self.orders_within, self.spend_within, self.bought_within if self.bought else None]
        return [w for w in found if w is not None]


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    conditions: Conditions
    # per store (the customer's store, as for lifecycle policies): conditions that replace these
    stores: dict[str, Conditions] = field(default_factory=dict)

    def for_store(self, store_id: str | None) -> Conditions:
        if store_id is None:
            return self.conditions
        return self.stores.get(store_id, self.conditions)

    def every_conditions(self) -> list[Conditions]:
        return [self.conditions, *self.stores.values()]


Check = Callable[["_Facts"], tuple[bool, int | None]]


class ScoreCrossings(Protocol):
    """What segment conditions on the customer-base model ask of it (stream/model): between
    two purchases P(alive) and the expected value only fall, so each threshold is crossed
    once, at an instant computed from the customer's counted orders."""

    def fingerprint(self) -> str: ...

    def p_alive_below_from(self, customer: CustomerState, threshold: float) -> int | None:
        """The first instant P(alive) is below `threshold` (None: no counted order)."""
        ...

    def value_at_most_from(self, customer: CustomerState, amount: float) -> int | None:
        """The first instant the expected value over 365 days is `amount` or less (None: no
        counted order)."""
        ...


@dataclass(frozen=True, slots=True)
class SegmentRules:
    """The configured segments, in configuration order, and the class order (segment names)."""

    segments: tuple[Segment, ...] = ()
    classes: tuple[str, ...] = ()
    # the customer-base model, for `p_alive_below` and `expected_value_over`
    model: ScoreCrossings | None = field(default=None, compare=False)
    # derived once: the longest window (orders placed longer ago are in no window), the item
    # keys of unwindowed `bought` conditions, and each segment's conditions as checks
    horizon: int = field(init=False, repr=False, compare=False)
    unwindowed_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    compiled: tuple[tuple[str, Check, dict[str, Check]], ...] = field(init=False, repr=False, compare=False)
    reads_state: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        every = [c for s in self.segments for c in s.every_conditions()]
        derived = {
            "horizon": max((w for c in every for w in c.windows()), default=0),
            "unwindowed_keys": frozenset(k for c in every if c.bought_within is None for k in c.bought),
            "reads_state": any(c.state for c in every),
            "compiled": tuple(
                (s.name, _segment_check(s.conditions), {st: _segment_check(c) for st, c in s.stores.items()})
                for s in self.segments
            ),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def fingerprint(self) -> str:
        """Changes whenever a segment is added, removed or redefined, or classes change; the
        same in every process (sets are written sorted)."""

        def canonical(c: Conditions) -> str:
            plain = {f: getattr(c, f) for f in c.__slots__}
            plain["bought"] = sorted(c.bought)
            plain["state"] = sorted(c.state)
            return repr(sorted(plain.items()))

        uses_model = any(c.uses_model() for s in self.segments for c in s.every_conditions())
        text = repr(
            [
                (s.name, canonical(s.conditions), sorted((k, canonical(v)) for k, v in s.stores.items()))
                for s in self.segments
            ]
            + [self.classes]
            # a refitted model moves memberships as a redefined segment does
            + [self.model.fingerprint() if uses_model and self.model is not None else None]
        )
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def __bool__(self) -> bool:
        return bool(self.segments)


class Membership(NamedTuple):
    """A customer's segments (in configuration order) and class at an instant, and the first
    later instant at which time alone may change them (None: only an event can)."""

    segments: list[str]
    klass: str | None
    next_change: int | None


def evaluate(
    rules: SegmentRules, customer: CustomerState, at_us: int, lifecycle_deadline: int | None
) -> Membership:
    """Membership at `at_us` of a customer whose lifecycle state is already settled at `at_us`.

    `lifecycle_deadline` is the next instant the lifecycle state changes by time alone.
    """
    if rules.horizon:
        prune_windows(customer, at_us - rules.horizon)
    facts = _Facts(customer, at_us, lifecycle_deadline, rules.model)
    members: list[str] = []
    next_change: int | None = None
    store = customer.store_id
    for name, check, by_store in rules.compiled:
        if by_store and store in by_store:
            check = by_store[store]
        holds, change = check(facts)
        if holds:
            members.append(name)
        if change is not None and (next_change is None or change < next_change):
            next_change = change
    klass = next((name for name in rules.classes if name in members), None)
    return Membership(members, klass, next_change)


def moved_up(classes: tuple[str, ...], from_class: str | None, to_class: str | None) -> bool:
    """True when `to_class` comes earlier in the class order; no class is below the last."""

    def rank(name: str | None) -> int:
        return classes.index(name) if name in classes else len(classes)

    return rank(to_class) < rank(from_class)


def _segment_check(conditions: Conditions) -> Check:
    """One check for a segment: its condition's own when it has one (most do), else all."""
    checks = _checks(conditions)
    if len(checks) == 1:
        return checks[0]
    return lambda facts: _all_hold(checks, facts)


def _all_hold(checks: tuple[Check, ...], facts: _Facts) -> tuple[bool, int | None]:
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


class _Facts:
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
        "spend_within",
        "state",
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
        # (window, currency) -> (start of the window in `recent`, net spend in it): several
        # segments (A/B/C classes) usually share a window
        self.spend_within: dict[tuple[int, str], tuple[int, int]] = {}

    def window_spend(self, window: int, currency: str) -> tuple[int, int]:
        key = (window, currency)
        found = self.spend_within.get(key)
        if found is None:
            recent = self.recent
            start = bisect.bisect_right(recent, self.at - window, key=_placed_at)
            total = sum(entry[1] for entry in recent[start:] if entry[2] == currency)
            found = self.spend_within[key] = (start, total)
        return found


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
    return tuple(checks)


def _orders_over(count: int, window: int | None) -> Check:
    if window is None:
        return lambda f: (f.count > count, None)

    def check(f: _Facts) -> tuple[bool, int | None]:
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

    def check(f: _Facts) -> tuple[bool, int | None]:
        start, total = f.window_spend(window, currency)
        if total <= amount:
            return _NEVER
        for placed_at, net, paid_in, _ in f.recent[start:]:  # oldest first: the sum falls as they leave
            if paid_in == currency:
                total -= net
                if total <= amount:
                    return True, placed_at + window
        raise AssertionError("unreachable: with every order gone the sum is zero")

    return check


def _first_order_within(window: int) -> Check:
    def check(f: _Facts) -> tuple[bool, int | None]:
        first = f.first
        if first is not None and f.at - first < window:
            return True, first + window
        return _NEVER

    return check


def _last_order_within(window: int) -> Check:
    def check(f: _Facts) -> tuple[bool, int | None]:
        last = f.last
        if last is not None and f.at - last < window:
            return True, last + window
        return _NEVER

    return check


def _no_order_within(window: int) -> Check:
    def check(f: _Facts) -> tuple[bool, int | None]:
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

    def check(f: _Facts) -> tuple[bool, int | None]:
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

    def check(f: _Facts) -> tuple[bool, int | None]:
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
    def check(f: _Facts) -> tuple[bool, int | None]:
        assert f.model is not None, "config checks that p_alive_below has a model"
        crossing = f.model.p_alive_below_from(f.customer, threshold)
        if crossing is None:
            return _NEVER
        return (True, None) if f.at >= crossing else (False, crossing)

    return check


def _expected_value_over(amount: float) -> Check:
    def check(f: _Facts) -> tuple[bool, int | None]:
        assert f.model is not None, "config checks that expected_value_over has a model"
        crossing = f.model.value_at_most_from(f.customer, amount)
        if crossing is None or f.at >= crossing:
            return _NEVER
        return True, crossing

    return check
