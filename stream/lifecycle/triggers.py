"""Triggers: "something happened, and something else did not follow within a time"
(docs/triggers.md), on the partition's clock and deadline index like every other rule.

A customer's `TriggerBook` holds one pending firing per trigger (armed by the last `on`
occurrence), the last `on` occurrence of each trigger (an older or a redelivered one arms
nothing), the `once` triggers that fired, and the latest instants of the `unless` events
that are not orders (orders are in the customer's record already), for `on` occurrences
that arrive after them. At every instant the partition settles a customer it calls, in
this order: `disarm` with the event's `unless` occurrence, `arm` with each `on` occurrence
(the changes made at the instant, then the event), then `due` for the firings at or before
the instant.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from .events import CustomerEngaged, CustomerSignedUp, Item, OrderEvent
from .policy import State
from .transitions import CustomerSnapshot, TriggerFired, trigger_id_prefix

if TYPE_CHECKING:
    from .customer import CustomerState
    from .segment_changes import Stamp

# what an `unless` of a non-order event remembers per customer: its latest instants
UNLESS_KEPT = 16
EVENT_OCCURRENCES = ("order", "signed_up")  # and "engaged:<kind>"


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    # "order", "signed_up", "engaged:<kind>", a transition name, "entered_segment:<segment>"
    on: str
    after_us: int = 0
    unless: frozenset[str] = frozenset()  # "order", "signed_up", "engaged:<kind>"
    only_state: frozenset[State] = frozenset()  # empty: any state
    once: bool = False


@dataclass(frozen=True)
class TriggerRules:
    """The configured triggers, in configuration order (the order of firings at one instant)."""

    triggers: tuple[Trigger, ...] = ()
    by_on: dict[str, tuple[Trigger, ...]] = field(init=False, repr=False, compare=False)
    by_unless: dict[str, tuple[Trigger, ...]] = field(init=False, repr=False, compare=False)
    rank: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_on: dict[str, list[Trigger]] = {}
        by_unless: dict[str, list[Trigger]] = {}
        for trigger in self.triggers:
            by_on.setdefault(trigger.on, []).append(trigger)
            for kind in trigger.unless:
                by_unless.setdefault(kind, []).append(trigger)
        object.__setattr__(self, "by_on", {k: tuple(v) for k, v in by_on.items()})
        object.__setattr__(self, "by_unless", {k: tuple(v) for k, v in by_unless.items()})
        object.__setattr__(self, "rank", {t.name: i for i, t in enumerate(self.triggers)})

    def __bool__(self) -> bool:
        return bool(self.triggers)

    def named(self, name: str) -> Trigger:
        return self.triggers[self.rank[name]]


class Occurrence(NamedTuple):
    """Something a trigger's `on` or `unless` can name, at its instant."""

    name: str  # see Trigger.on
    at_us: int
    event_id: str  # the event, or the change (a transition, a segment entry)
    items: list[Item] | None = None
    cart_id: str | None = None
    # the input event it comes from: the event itself, or the one that caused the change
    # (None: time alone). It is never an `unless` of what it arms.
    source_event_id: str | None = None


class Armed(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A pending firing: at `fires_at`, for the `on` occurrence at `on_at`."""

    fires_at: int
    on_at: int
    cause_event_id: str
    items: list[Item] | None = None
    cart_id: str | None = None


class TriggerBook(msgspec.Struct, array_like=True, gc=False):
    """What one customer's triggers keep; new fields go at the end, with a default."""

    seq: int = 0  # firings so far: the last firing's `seq`
    pending: dict[str, Armed] = msgspec.field(default_factory=dict)
    last_on: dict[str, tuple[int, str]] = msgspec.field(default_factory=dict)
    fired_once: list[str] = msgspec.field(default_factory=list)
    # "signed_up" or "engaged:<kind>" named by an `unless`: its latest occurrences (instant,
    # event id), oldest first
    seen: dict[str, list[tuple[int, str]]] = msgspec.field(default_factory=dict)


def event_occurrence(event: OrderEvent, at_us: int, counted_placement: bool) -> Occurrence | None:
    """What `event` is an occurrence of: a sign-up, an engagement of its kind, or (when
    `counted_placement`: the first placement of an order that counts) an order."""
    name = event_name(event, counted_placement)
    if name is None:
        return None
    if isinstance(event, CustomerEngaged):
        return Occurrence(name, at_us, event.event_id, event.items, event.cart_id, event.event_id)
    return Occurrence(name, at_us, event.event_id, source_event_id=event.event_id)


def event_name(event: OrderEvent, counted_placement: bool) -> str | None:
    if isinstance(event, CustomerEngaged):
        return f"engaged:{event.kind}"
    if isinstance(event, CustomerSignedUp):
        return "signed_up"
    return "order" if counted_placement else None


def disarm(rules: TriggerRules, customer: CustomerState, occurrence: Occurrence) -> bool:
    """An `unless` occurrence at `u`: every pending firing armed at `s` with `s <= u` and
    firing after `u` is dropped. True when the customer's record changed."""
    triggers = rules.by_unless.get(occurrence.name)
    if not triggers:
        return False
    changed = False
    u = occurrence.at_us
    book = customer.triggers
    if occurrence.name != "order":
        book = _book(customer)
        seen = book.seen.setdefault(occurrence.name, [])
        noted = (u, occurrence.event_id)
        if noted not in seen:
            bisect.insort(seen, noted)
            del seen[:-UNLESS_KEPT]
            changed = True
    if book is None:
        return changed
    for trigger in triggers:
        armed = book.pending.get(trigger.name)
        if armed is not None and armed.on_at <= u < armed.fires_at:
            del book.pending[trigger.name]
            changed = True
    return changed


def arm(rules: TriggerRules, customer: CustomerState, occurrence: Occurrence) -> bool:
    """An `on` occurrence at `s` arms each of its triggers to fire at `s + after`, replacing
    what was pending; unless an `unless` occurrence already known falls in `[s, s + after)`.

    An occurrence no later than the trigger's last one (by instant, then id) arms nothing:
    it is the same one redelivered, or an older one the last had re-armed. True when the
    customer's record changed."""
    triggers = rules.by_on.get(occurrence.name)
    if not triggers:
        return False
    changed = False
    key = (occurrence.at_us, occurrence.event_id)
    for trigger in triggers:
        book = _book(customer)
        if trigger.once and trigger.name in book.fired_once:
            continue
        last = book.last_on.get(trigger.name)
        if last is not None and key <= tuple(last):
            continue
        book.last_on[trigger.name] = key
        changed = True
        fires_at = occurrence.at_us + trigger.after_us
        if _unless_known(trigger, customer, book, occurrence.at_us, fires_at, occurrence.source_event_id):
            book.pending.pop(trigger.name, None)
            continue
        book.pending[trigger.name] = Armed(
            fires_at, occurrence.at_us, occurrence.event_id, occurrence.items, occurrence.cart_id
        )
    return changed


def _unless_known(
    trigger: Trigger, customer: CustomerState, book: TriggerBook, start: int, end: int, arming: str | None
) -> bool:
    """An `unless` occurrence of `trigger` already known in `[start, end)`, other than the
    event `arming` (what armed it, or caused the change that did)."""
    for kind in trigger.unless:
        if kind == "order":
            # no order counted at or after `start`: the orders need no look (the common case)
            last = customer.last_order_at
            if (
                last is not None
                and last >= start
                and any(
                    start <= (o.counted_at() or -1) < end and o.placed_event_id != arming
                    for o in customer.orders.values()
                )
            ):
                return True
            continue
        for at, event_id in book.seen.get(kind, ()):
            if start <= at < end and event_id != arming:
                return True
    return False


def due(rules: TriggerRules, customer: CustomerState, at_us: int) -> list[tuple[Trigger, Armed]]:
    """The pending firings at or before `at_us`, taken out, in configuration order."""
    book = customer.triggers
    if book is None or not book.pending:
        return []
    names = [name for name, armed in book.pending.items() if armed.fires_at <= at_us]
    found = []
    for name in sorted(names, key=lambda n: rules.rank.get(n, len(rules.rank))):
        armed = book.pending.pop(name)
        if name in rules.rank:
            found.append((rules.named(name), armed))
    return found


def may_fire(trigger: Trigger, customer: CustomerState) -> bool:
    """`once` and `only_state`, read at the firing instant (the state already settled)."""
    if trigger.once and customer.triggers is not None and trigger.name in customer.triggers.fired_once:
        return False
    return not trigger.only_state or customer.state in trigger.only_state


def fired_event(
    trigger: Trigger, customer: CustomerState, armed: Armed, stamp: Stamp, snapshot: CustomerSnapshot
) -> TriggerFired:
    """The customer's next firing, of `trigger` for what `armed` it, at the stamp's instant."""
    book = _book(customer)
    book.seq += 1
    if trigger.once:
        book.fired_once.append(trigger.name)
    prefix = trigger_id_prefix(customer.customer_id, customer.created_at)
    return TriggerFired(
        event_id=f"{prefix}{book.seq:08x}",
        customer_id=customer.customer_id,
        seq=book.seq,
        trigger=trigger.name,
        occurred_at=stamp.occurred_at,
        detected_at=stamp.detected_at,
        replayed=stamp.replayed,
        cause_event_id=armed.cause_event_id,
        items=armed.items,
        cart_id=armed.cart_id,
        customer=snapshot,
    )


def include_next_firing(customer: CustomerState) -> None:
    """The customer's deadline (lifecycle and segments) brought forward to their next
    pending firing, if that comes first."""
    book = customer.triggers
    if book is None or not book.pending:
        return
    upcoming = min(armed.fires_at for armed in book.pending.values())
    if customer.deadline is None or upcoming < customer.deadline:
        customer.deadline = upcoming


def forget_removed(rules: TriggerRules, customer: CustomerState) -> None:
    """Drop the pending firings of triggers no longer configured (a removed trigger never
    fires), and the `unless` occurrences no trigger names. A trigger's name is its identity:
    what it fired `once` and its last `on` occurrence are kept, so a trigger removed and
    added back does not fire twice."""
    book = customer.triggers
    if book is None:
        return
    for name in [n for n in book.pending if n not in rules.rank]:
        del book.pending[name]
    for kind in [k for k in book.seen if k not in rules.by_unless]:
        del book.seen[kind]


def _book(customer: CustomerState) -> TriggerBook:
    if customer.triggers is None:
        customer.triggers = TriggerBook()
    return customer.triggers
