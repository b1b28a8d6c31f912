"""A customer's state: their orders as far as they count, and where they stand.

The bookkeeping is idempotent and independent of arrival order on purpose: Kafka
redelivers, and cancellations or refunds may arrive before the order they concern.
The aggregates (count, first, last, spend) are kept up to date incrementally on the
common path, a new order, and recomputed from the orders when one stops counting.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import msgspec

from .events import (
    CustomerEngaged,
    CustomerErased,
    CustomerSignedUp,
    Item,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderRefunded,
)
from .folding import FoldedOrders
from .instants import DAY_US, from_us
from .policy import State
from .transitions import CustomerScores, CustomerSnapshot, FirstOrder, event_id_prefix
from .triggers import TriggerBook


class RejectedEvent(ValueError):
    """An event that is well formed but cannot be applied; the message is the reason."""


# A customer's net spend in one currency stays a signed 64-bit integer, which is what the
# stored record can hold; each order is bounded (events.MAX_AMOUNT_MINOR), their sum is not.
MAX_SPEND_MINOR = 2**63 - 1


class OrderRecord(msgspec.Struct, kw_only=True, array_like=True, frozen=True, gc=False):
    """One order_id: its placement (if seen), cancellation and refunds (by refund event_id).

    Encoded as an array: a stored customer holds every order, and its fields' names made a
    third of the bytes. New fields go at the end, with a default.

    A value: a change makes a new record, and the containers it holds (items, refunds) are
    never changed in place. The worker writes a customer back after every event, and reuses
    the bytes of each order it encoded before as long as the customer holds the same record
    (`stream/worker/state.py`)."""

    placed_at: int | None = None
    placed_event_id: str | None = None
    total_minor: int = 0
    currency: str | None = None
    items: list[Item] | None = None
    channel: str | None = None
    payment_method: str | None = None
    coupon: str | None = None
    store_id: str | None = None
    cancelled: bool = False
    # refund event_id -> (amount, currency); None until the first refund: most orders
    # never see one, and an empty dict is 64 bytes per order held
    refunds: dict[str, tuple[int, str]] | None = None

    def refunded_minor(self) -> int:
        if not self.refunds:
            return 0
        return sum(amount for amount, currency in self.refunds.values() if currency == self.currency)

    def net_minor(self) -> int:
        """What the order is worth, its refunds (in its currency) taken off."""
        return self.total_minor - self.refunded_minor()

    def counts(self) -> bool:
        """A counted order: placed, not cancelled, not refunded up to its total."""
        return self.counted_at() is not None

    def counted_at(self) -> int | None:
        """When a counted order was placed; None for an order that does not count."""
        if self.placed_at is None or self.cancelled:
            return None
        if self.refunds and self.refunded_minor() >= self.total_minor:
            return None
        return self.placed_at


# (placed_at, net amount in minor units, currency, order_id) of a counted order in a window
RecentOrder = tuple[int, int, str, str]


class CustomerState(msgspec.Struct, kw_only=True, gc=False):
    """Everything the engine keeps about one customer.

    Like every record of the engine (events, orders, transitions, stored customers), plain
    data that never refers back to what holds it, so left out of Python's cyclic garbage
    collector (`gc=False`): a replay holds millions of them, and a worker thousands, which
    the collector otherwise scanned over and over (in the worker, up to a tenth of its time)."""

    customer_id: str
    created_at: int
    id_prefix: str
    state: State = State.PROSPECT
    state_since: int
    seq: int = 0
    order_count: int = 0
    first_order_at: int | None = None
    first_order_id: str | None = None
    last_order_at: int | None = None
    store_id: str | None = None
    spend: dict[str, int] = msgspec.field(default_factory=dict)
    deadline: int | None = None
    orders: dict[str, OrderRecord] = msgspec.field(default_factory=dict)
    # segments (docs/segments.md): current membership (sorted names) and class, the count
    # of segment changes, and what windowed and `bought` conditions read (see segments.py)
    segments: list[str] = msgspec.field(default_factory=list)
    segment_class: str | None = None
    change_seq: int = 0
    # the instant time alone may next change the segments (0: not known, evaluate)
    segments_until: int = 0
    recent: list[RecentOrder] | None = None
    bought_keys: list[str] | None = None
    # contact data of the latest placement (time, then event_id) that carried any
    email: str | None = None
    accepts_marketing: bool | None = None
    contact_from: tuple[int, str] | None = None
    # the oldest orders, folded into totals once the customer holds too many (folding.py)
    folded: FoldedOrders | None = None
    # experiments (docs/experiments.md): the instant of the first exposure in each, and the
    # experiments whose goal was reached within the window after it (counted once)
    exposures: dict[str, int] | None = None
    goals: list[str] | None = None
    # before the first order (docs/triggers.md): the latest sign-up's instant, the latest
    # instant of each engagement key the segments read, and the triggers' bookkeeping
    signed_up_at: int | None = None
    engaged: dict[str, int] | None = None
    triggers: TriggerBook | None = None


def new_customer(customer_id: str, created_at_us: int) -> CustomerState:
    return CustomerState(
        customer_id=customer_id,
        created_at=created_at_us,
        id_prefix=event_id_prefix(customer_id, created_at_us),
        state_since=created_at_us,
    )


def record_event(customer: CustomerState, event: OrderEvent, at_us: int, keep_contact: bool = True) -> bool:
    """Record an order event and refresh the aggregates; False when it changes nothing.

    Without `keep_contact`, contact data (email, marketing consent) is not kept at all."""
    if isinstance(event, OrderPlaced):
        noted = keep_contact and note_contact(
            customer, event.email, event.accepts_marketing, at_us, event.event_id
        )
        return _record_placed(customer, event, at_us) or noted
    if isinstance(event, OrderCancelled):
        changed = _record_cancelled(customer, event)
    elif isinstance(event, OrderRefunded):
        changed = _record_refunded(customer, event)
    elif isinstance(event, CustomerErased):
        raise TypeError("erasure deletes the customer; it is not recorded")
    elif isinstance(event, CustomerSignedUp | CustomerEngaged):
        raise TypeError("sign-ups and engagement count no order; see engagement.py")
    else:
        raise TypeError(f"unknown event type {type(event).__name__}")
    if changed:
        refresh_aggregates(customer)
    return changed


def note_contact(
    customer: CustomerState, email: str | None, accepts_marketing: bool | None, at_us: int, event_id: str
) -> bool:
    """Keep the contact data of the latest event (placement or sign-up) carrying any: the
    same whatever order the events arrive in."""
    if email is None and accepts_marketing is None:
        return False
    key = (at_us, event_id)
    if customer.contact_from is not None and key <= customer.contact_from:
        return False
    customer.contact_from = key
    changed = (customer.email, customer.accepts_marketing) != (email, accepts_marketing)
    customer.email, customer.accepts_marketing = email, accepts_marketing
    return changed


def _record_placed(customer: CustomerState, event: OrderPlaced, at_us: int) -> bool:
    order = customer.orders.get(event.order_id)
    total = event.total
    if customer.spend.get(total.currency, 0) + total.amount_minor > MAX_SPEND_MINOR:
        raise RejectedEvent(
            f"the customer's spend in {total.currency} would exceed {MAX_SPEND_MINOR} minor units"
        )
    if order is None:
        order = customer.orders[event.order_id] = _placement(event, at_us)
        _count_new_order(customer, event.order_id, order)
        return True
    if order.placed_at is not None and (at_us, event.event_id) >= (
        order.placed_at,
        order.placed_event_id or "",
    ):
        # The same order placed twice counts once; keeping the earliest placement (ties by
        # event_id) makes the result independent of arrival order.
        return False
    # placed after its cancellation or refunds arrived, or placed earlier than it was seen
    customer.orders[event.order_id] = _placement(event, at_us, order.cancelled, order.refunds)
    refresh_aggregates(customer)
    return True


def _shared(text: str | None) -> str | None:
    # Currencies, channels, payment methods, stores and coupons repeat across millions of
    # orders; one shared copy of each keeps a large replay's memory in check.
    return None if text is None else sys.intern(text)


def _placement(
    event: OrderPlaced,
    at_us: int,
    cancelled: bool = False,
    refunds: dict[str, tuple[int, str]] | None = None,
) -> OrderRecord:
    return OrderRecord(
        placed_at=at_us,
        placed_event_id=event.event_id,
        total_minor=event.total.amount_minor,
        currency=sys.intern(event.total.currency),
        items=event.items,
        channel=_shared(event.channel),
        payment_method=_shared(event.payment_method),
        coupon=_shared(event.coupon),
        store_id=_shared(event.store_id),
        cancelled=cancelled,
        refunds=refunds,
    )


def _count_new_order(customer: CustomerState, order_id: str, order: OrderRecord) -> None:
    """The common path: one more counted order, aggregates updated without a rescan."""
    at = order.placed_at
    assert at is not None and order.currency is not None
    customer.order_count += 1
    first = customer.first_order_at
    if first is None or (at, order_id) < (first, customer.first_order_id or ""):
        customer.first_order_at = at
        customer.first_order_id = order_id
        customer.store_id = order.store_id
    last = customer.last_order_at
    if last is None or at > last:
        customer.last_order_at = at
    customer.spend[order.currency] = customer.spend.get(order.currency, 0) + order.total_minor


def _record_cancelled(customer: CustomerState, event: OrderCancelled) -> bool:
    order = customer.orders.get(event.order_id)
    if order is None:
        order = OrderRecord()
    elif order.cancelled:
        return False
    customer.orders[event.order_id] = msgspec.structs.replace(order, cancelled=True)
    return True


def _record_refunded(customer: CustomerState, event: OrderRefunded) -> bool:
    order = customer.orders.get(event.order_id)
    if order is None:
        order = OrderRecord()
    if order.refunds is not None and event.event_id in order.refunds:
        return False
    if order.currency is not None and event.amount.currency != order.currency:
        raise RejectedEvent(
            f"refund currency {event.amount.currency} differs from the order's currency {order.currency}"
        )
    refunds = {**(order.refunds or {}), event.event_id: (event.amount.amount_minor, event.amount.currency)}
    customer.orders[event.order_id] = msgspec.structs.replace(order, refunds=refunds)
    return True


def refresh_aggregates(customer: CustomerState) -> None:
    """Recompute count, first and last order, store and net spend from the orders (those
    folded as their totals: the first order is never among them)."""
    folded = customer.folded
    customer.order_count = 0 if folded is None else folded.counted
    customer.first_order_at = customer.first_order_id = None
    customer.last_order_at = None if folded is None else folded.latest_counted
    customer.store_id = None
    customer.spend = {} if folded is None else dict(folded.spend)
    for order_id, order in sorted(customer.orders.items()):
        if order.counts():
            _count_new_order(customer, order_id, order)
            if order.refunds:
                assert order.currency is not None
                customer.spend[order.currency] -= order.refunded_minor()


# A customer's model scores at an instant (None before their first counted order); the
# drivers build it from the configured model (stream/model), the core only calls it.
Scorer = Callable[[CustomerState, int], CustomerScores | None]


def snapshot(customer: CustomerState, at_us: int, scorer: Scorer | None = None) -> CustomerSnapshot:
    """The customer as a marketer sees them at `at_us`."""
    first_order = None
    if customer.first_order_id is not None:
        order = customer.orders[customer.first_order_id]
        first_order = FirstOrder(
            order_id=customer.first_order_id,
            items=order.items,
            channel=order.channel,
            payment_method=order.payment_method,
            coupon=order.coupon,
            store_id=order.store_id,
        )
    first, last = customer.first_order_at, customer.last_order_at
    scores = scorer(customer, at_us) if scorer is not None else None
    return CustomerSnapshot(
        order_count=customer.order_count,
        first_order_at=None if first is None else from_us(first),
        last_order_at=None if last is None else from_us(last),
        spend=dict(customer.spend),
        first_order=first_order,
        days_since_last_order=None if last is None else (at_us - last) // DAY_US,
        segments=list(customer.segments),
        segment_class=customer.segment_class,
        email=customer.email,
        accepts_marketing=customer.accepts_marketing,
        p_alive=None if scores is None else scores.p_alive,
        expected_orders_365d=None if scores is None else scores.expected_orders_365d,
        expected_value_365d=None if scores is None else scores.expected_value_365d,
    )


ERASED_SNAPSHOT = CustomerSnapshot(
    order_count=0,
    first_order_at=None,
    last_order_at=None,
    spend={},
    first_order=None,
    days_since_last_order=None,
)
