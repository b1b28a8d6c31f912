"""Order events, the engine's input (schema v1).

These types are the input schema: `schemas/v1/order-event.json` is generated from them and a
test keeps the two identical. Decoding and validation happen once, at the edge.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, cast

import msgspec

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")]
# Bounds that keep every amount, and every customer's sum of them, a 64-bit integer (what
# the stored records and the JSON readers downstream hold): ten trillion euros an order,
# a billion of one item.
MAX_AMOUNT_MINOR = 10**15
MAX_QUANTITY = 10**9
MinorUnits = Annotated[
    int,
    msgspec.Meta(ge=0, le=MAX_AMOUNT_MINOR, description="amount in the currency's minor unit (cents)"),
]
Email = Annotated[str, msgspec.Meta(max_length=320)]
Instant = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with a zone; compared in UTC")]


class Money(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    amount_minor: MinorUnits
    currency: Currency


class Item(msgspec.Struct, frozen=True, gc=False):
    sku: NonEmpty
    qty: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)]
    unit_minor: MinorUnits
    category: str | None = None


class _Event(msgspec.Struct, frozen=True, tag_field="type", gc=False):
    event_id: NonEmpty
    customer_id: NonEmpty
    occurred_at: Instant


class OrderPlaced(_Event, frozen=True, tag="order.placed"):
    """A customer bought."""

    order_id: NonEmpty
    total: Money
    items: list[Item] | None = None
    channel: str | None = None
    payment_method: str | None = None
    coupon: str | None = None
    store_id: str | None = None
    # contact data, optional: the latest placement's is the customer's (docs/lifecycle.md)
    email: Email | None = None
    accepts_marketing: bool | None = None


class OrderCancelled(_Event, frozen=True, tag="order.cancelled"):
    """The order no longer counts."""

    order_id: NonEmpty


class OrderRefunded(_Event, frozen=True, tag="order.refunded"):
    """Money went back; a refund that reaches the order's total makes it no longer count."""

    order_id: NonEmpty
    amount: Money


class CustomerErased(_Event, frozen=True, tag="customer.erased"):
    """Right to be forgotten: the customer's state is deleted."""


class CustomerSignedUp(_Event, frozen=True, tag="customer.signed_up"):
    """A person gave the shop their address (newsletter, account, pop-up); it counts no
    order and changes no lifecycle state (docs/triggers.md)."""

    email: Email | None = None
    accepts_marketing: bool | None = None
    source: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class CustomerEngaged(_Event, frozen=True, tag="customer.engaged"):
    """A sign of interest: a product viewed, a cart filled, a mail clicked. Counts no order."""

    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9_.-]+$")]
    items: list[Item] | None = None
    cart_id: NonEmpty | None = None


# Every event of the input, orders and before them; the name stays from when there were
# only orders.
OrderEvent = (
    OrderPlaced | OrderCancelled | OrderRefunded | CustomerErased | CustomerSignedUp | CustomerEngaged
)


EventType = Literal[
    "order.placed",
    "order.cancelled",
    "order.refunded",
    "customer.erased",
    "customer.signed_up",
    "customer.engaged",
]


_TYPE_OF: dict[type, EventType] = {
    cls: cast(EventType, cls.__struct_config__.tag)
    for cls in (OrderPlaced, OrderCancelled, OrderRefunded, CustomerErased, CustomerSignedUp, CustomerEngaged)
}


def event_type(event: OrderEvent) -> EventType:
    """The `type` tag an event was decoded from."""
    return _TYPE_OF[type(event)]
