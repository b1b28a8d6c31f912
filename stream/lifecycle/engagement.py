"""What sign-ups and engagement leave in a customer's record (docs/triggers.md).

Neither counts an order nor moves the lifecycle state. Engagement can come at a hundred
times the rate of orders, so a customer keeps of it only what the configured segments read:
the latest instant of each engagement key they name (`kind`, `kind:sku:<sku>`,
`kind:category:<category>`); the triggers keep their own (triggers.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from .customer import CustomerState, note_contact
from .events import CustomerEngaged, CustomerSignedUp


def note_signed_up(customer: CustomerState, event: CustomerSignedUp, at_us: int, keep_contact: bool) -> bool:
    """The latest sign-up's instant, and its contact data as a placement's is kept."""
    changed = False
    if customer.signed_up_at is None or at_us > customer.signed_up_at:
        customer.signed_up_at = at_us
        changed = True
    if keep_contact:
        changed = (
            note_contact(customer, event.email, event.accepts_marketing, at_us, event.event_id) or changed
        )
    return changed


def engagement_keys(event: CustomerEngaged) -> Iterator[str]:
    """The keys an `engaged` condition matches this engagement by."""
    kind = event.kind
    yield kind
    for item in event.items or ():
        yield f"{kind}:sku:{item.sku}"
        if item.category is not None:
            yield f"{kind}:category:{item.category}"


def note_engaged(read: frozenset[str], customer: CustomerState, event: CustomerEngaged, at_us: int) -> bool:
    """The latest instant of each key in `read` (those the segments read) this engagement has."""
    if not read:
        return False
    changed = False
    for key in engagement_keys(event):
        if key in read:
            engaged = customer.engaged if customer.engaged is not None else {}
            if engaged.get(key, -1) < at_us:
                engaged[key] = at_us
                customer.engaged = engaged
                changed = True
    return changed
