"""Segments and classes: the rules of docs/segments.md as plain functions and data.

A customer is in a segment at instant `t` when every one of its conditions holds; membership
is a pure function of the customer's counted orders, their lifecycle state at `t`, and `t`.
Besides membership, evaluation gives the first instant after `t` at which time alone may
change it (an order leaving a window, a window running out, a lifecycle deadline): the
partition's deadline index fires the customer then, as it does for lifecycle deadlines.

The conditions themselves, compiled to checks, are in segment_checks.py; windowed
conditions read `CustomerState.recent`, the counted orders placed within the longest window
(kept sorted and pruned by segment_windows.py), so the cost of an evaluation depends on the
orders in the windows, not on the length of a customer's history. Unwindowed `bought`
conditions read `CustomerState.bought_keys`, the configured item keys any counted order has.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from .policy import State
from .segment_checks import Check, Facts, segment_check
from .segment_windows import prune_windows

if TYPE_CHECKING:
    from .customer import CustomerState


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
    # before the first order (docs/triggers.md)
    signed_up_within: int | None = None
    engaged: frozenset[str] = frozenset()  # "kind", "kind:sku:<sku>", "kind:category:<category>"
    engaged_within: int | None = None

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
            and self.signed_up_within is None
            and not self.engaged
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
    engaged_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    unwindowed_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    compiled: tuple[tuple[str, Check, dict[str, Check]], ...] = field(init=False, repr=False, compare=False)
    reads_state: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        every = [c for s in self.segments for c in s.every_conditions()]
        derived = {
            "horizon": max((w for c in every for w in c.windows()), default=0),
            "unwindowed_keys": frozenset(k for c in every if c.bought_within is None for k in c.bought),
            "reads_state": any(c.state for c in every),
            "engaged_keys": frozenset(k for c in every for k in c.engaged),
            "compiled": tuple(
                (s.name, segment_check(s.conditions), {st: segment_check(c) for st, c in s.stores.items()})
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
            plain["engaged"] = sorted(c.engaged)
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
    facts = Facts(customer, at_us, lifecycle_deadline, rules.model)
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
