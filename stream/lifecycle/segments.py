"""Segments and classes: the rules of docs/segments.md as plain functions and data.

A customer is in a segment at instant `t` when every one of its conditions holds; membership
is a pure function of the customer's counted orders, their lifecycle state at `t`, and `t`.
Besides membership, evaluation gives the first instant after `t` at which time alone may
change it (an order leaving a window, a window running out, a lifecycle deadline): the
partition's deadline index fires the customer then, as it does for lifecycle deadlines.

Windowed conditions read `CustomerState.recent`, the counted orders placed within the
longest window (kept sorted and pruned here), so the cost of an evaluation depends on the
orders in the windows, not on the length of a customer's history. Unwindowed `bought`
conditions read `CustomerState.bought_keys`, the configured item keys any counted order has.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .events import Item, OrderEvent, OrderPlaced
from .policy import State

if TYPE_CHECKING:
    from .customer import CustomerState, OrderRecord


def item_keys(item: Item) -> tuple[str, ...]:
    """The keys a `bought` condition matches an item by: `sku:<sku>` and `category:<category>`."""
    if item.category is None:
        return (f"sku:{item.sku}",)
    return (f"sku:{item.sku}", f"category:{item.category}")


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

    def is_empty(self) -> bool:
        return (
            self.orders_over is None
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


@dataclass(frozen=True, slots=True)
class SegmentRules:
    """The configured segments, in configuration order, and the class order (segment names)."""

    segments: tuple[Segment, ...] = ()
    classes: tuple[str, ...] = ()

    @property
    def horizon(self) -> int:
        """The longest window: orders placed longer ago than this are in no window."""
        return max((w for s in self.segments for c in s.every_conditions() for w in c.windows()), default=0)

    @property
    def unwindowed_keys(self) -> frozenset[str]:
        return frozenset(
            key
            for s in self.segments
            for c in s.every_conditions()
            if c.bought_within is None
            for key in c.bought
        )

    def fingerprint(self) -> str:
        """Changes whenever a segment is added, removed or redefined, or classes change; the
        same in every process (sets are written sorted)."""

        def canonical(c: Conditions) -> str:
            plain = {f: getattr(c, f) for f in c.__slots__}
            plain["bought"] = sorted(c.bought)
            plain["state"] = sorted(c.state)
            return repr(sorted(plain.items()))

        text = repr(
            [
                (s.name, canonical(s.conditions), sorted((k, canonical(v)) for k, v in s.stores.items()))
                for s in self.segments
            ]
            + [self.classes]
        )
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def __bool__(self) -> bool:
        return bool(self.segments)


class Membership:
    """A customer's segments (in configuration order) and class at an instant, and the first
    later instant at which time alone may change them (None: only an event can)."""

    __slots__ = ("klass", "next_change", "segments")

    def __init__(self, segments: list[str], klass: str | None, next_change: int | None) -> None:
        self.segments = segments
        self.klass = klass
        self.next_change = next_change


def evaluate(
    rules: SegmentRules, customer: CustomerState, at_us: int, lifecycle_deadline: int | None
) -> Membership:
    """Membership at `at_us` of a customer whose lifecycle state is already settled at `at_us`.

    `lifecycle_deadline` is the next instant the lifecycle state changes by time alone.
    """
    _prune(customer, at_us - rules.horizon)
    members: list[str] = []
    next_change: int | None = None
    for segment in rules.segments:
        holds, change = _segment_holds(
            segment.for_store(customer.store_id), customer, at_us, lifecycle_deadline
        )
        if holds:
            members.append(segment.name)
        if change is not None and (next_change is None or change < next_change):
            next_change = change
    klass = next((name for name in rules.classes if name in members), None)
    return Membership(members, klass, next_change)


def moved_up(classes: tuple[str, ...], from_class: str | None, to_class: str | None) -> bool:
    """True when `to_class` comes earlier in the class order; no class is below the last."""

    def rank(name: str | None) -> int:
        return classes.index(name) if name in classes else len(classes)

    return rank(to_class) < rank(from_class)


# -- conditions ---------------------------------------------------------------------------
# Each gives (holds, flip): whether it holds at `at`, and the first later instant at which
# time alone may change that (None: never by time alone).


def _segment_holds(
    c: Conditions, customer: CustomerState, at: int, lifecycle_deadline: int | None
) -> tuple[bool, int | None]:
    """All conditions hold; and the earliest instant that may change the segment's answer.

    In: the first instant one of its conditions may stop holding. Out: no condition that
    fails can hold before its own flip, so not before the latest of those (if every failing
    one can come to hold by time at all).
    """
    results = _conditions(c, customer, at, lifecycle_deadline)
    failing = [flip for holds, flip in results if not holds]
    if not failing:
        return True, min((flip for _, flip in results if flip is not None), default=None)
    if any(flip is None for flip in failing):
        return False, None
    return False, max(flip for flip in failing if flip is not None)


def _conditions(
    c: Conditions, customer: CustomerState, at: int, lifecycle_deadline: int | None
) -> list[tuple[bool, int | None]]:
    results: list[tuple[bool, int | None]] = []
    first, last = customer.first_order_at, customer.last_order_at
    if c.orders_over is not None:
        results.append(_orders_over(c.orders_over, c.orders_within, customer, at))
    if c.spend_over is not None:
        results.append(_spend_over(c.spend_over, c.spend_currency, c.spend_within, customer, at))
    if c.first_order_within is not None:
        holds = first is not None and at - first < c.first_order_within
        results.append((holds, first + c.first_order_within if holds and first is not None else None))
    if c.last_order_within is not None:
        holds = last is not None and at - last < c.last_order_within
        results.append((holds, last + c.last_order_within if holds and last is not None else None))
    if c.no_order_within is not None:
        if last is None:
            results.append((False, None))
        elif at - last >= c.no_order_within:
            results.append((True, None))
        else:
            results.append((False, last + c.no_order_within))
    if c.bought:
        results.append(_bought(c.bought, c.bought_within, customer, at))
    if c.state:
        results.append((customer.state in c.state, lifecycle_deadline))
    return results


def _in_window(customer: CustomerState, at: int, window: int) -> list[tuple[int, OrderRecord]]:
    """Counted orders with `at - placed_at < window`, oldest first."""
    recent = customer.recent or []
    start = bisect.bisect_right(recent, (at - window, "\U0010ffff"))
    orders = customer.orders
    found = []
    for placed_at, order_id in recent[start:]:
        order = orders[order_id]
        if placed_at <= at and order.counts():
            found.append((placed_at, order))
    return found


def _orders_over(count: int, window: int | None, customer: CustomerState, at: int) -> tuple[bool, int | None]:
    if window is None:
        return customer.order_count > count, None
    times = [placed_at for placed_at, _ in _in_window(customer, at, window)]
    if len(times) <= count:
        return False, None
    # holds until enough of the oldest have left the window to leave `count`
    return True, times[len(times) - count - 1] + window


def _spend_over(
    amount: int, currency: str | None, window: int | None, customer: CustomerState, at: int
) -> tuple[bool, int | None]:
    if window is None:
        return customer.spend.get(currency or "", 0) > amount, None
    net = [
        (placed_at, order.total_minor - order.refunded_minor())
        for placed_at, order in _in_window(customer, at, window)
        if order.currency == currency
    ]
    total = sum(value for _, value in net)
    if total <= amount:
        return False, None
    for placed_at, value in net:  # oldest first: the sum falls as they leave the window
        total -= value
        if total <= amount:
            return True, placed_at + window
    raise AssertionError("unreachable: the last order leaving takes the sum to zero")


def _bought(
    keys: frozenset[str], window: int | None, customer: CustomerState, at: int
) -> tuple[bool, int | None]:
    if window is None:
        return bool(keys.intersection(customer.bought_keys or ())), None
    latest = None
    for placed_at, order in _in_window(customer, at, window):
        if order.items and any(k in keys for item in order.items for k in item_keys(item)):
            latest = placed_at
    if latest is None:
        return False, None
    return True, latest + window


# -- what the windows need ------------------------------------------------------------------


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
        bisect.insort(customer.recent, (order.placed_at, event.order_id))
    if keys and order.items:
        matched = _matched(keys, order)
        if matched - set(customer.bought_keys or ()):
            customer.bought_keys = sorted(matched.union(customer.bought_keys or ()))


def rebuild_windows(rules: SegmentRules, customer: CustomerState, clock_us: int) -> None:
    """`recent` and `bought_keys` from every order: after a change of counting or of rules."""
    horizon, keys = rules.horizon, rules.unwindowed_keys
    counted = [(order_id, order) for order_id, order in customer.orders.items() if order.counts()]
    recent = sorted(
        (order.placed_at, order_id)
        for order_id, order in counted
        if order.placed_at is not None and horizon and order.placed_at > clock_us - horizon
    )
    customer.recent = recent or None
    matched: set[str] = set()
    if keys:
        for _, order in counted:
            matched |= _matched(keys, order)
    customer.bought_keys = sorted(matched) or None


def _matched(keys: frozenset[str], order: OrderRecord) -> set[str]:
    return {k for item in order.items or () for k in item_keys(item) if k in keys}


def _prune(customer: CustomerState, before_us: int) -> None:
    """Drop orders placed at or before `before_us`: they are in no window from now on."""
    recent = customer.recent
    if not recent or recent[0][0] > before_us:
        return
    del recent[: bisect.bisect_right(recent, (before_us, "\U0010ffff"))]
    if not recent:
        customer.recent = None
