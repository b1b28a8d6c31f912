"""What is kept of an erased customer, and how a customer back after an erasure is told
from the erased life (docs/lifecycle.md, "Erasure")."""

from __future__ import annotations

import hashlib

from .customer import CustomerState


def erasure_key(customer_id: str) -> str:
    """What is kept of an erased customer: a one-way hash of the id, to ignore redeliveries."""
    return hashlib.blake2b(customer_id.encode(), digest_size=16, person=b"lifecycle-erase").hexdigest()


def back_after_erasure(customer: CustomerState, erased_at: int) -> bool:
    """True when `customer` is a life begun after an erasure at partition clock `erased_at`
    (events no newer than the erasure cannot begin one, see `Partition._before_erasure`),
    not the erased life itself."""
    return customer.created_at > erased_at
