"""Moving a customer between segments and classes, and the change events that tell it.

The partition decides when (an event, a deadline, an erasure, a new configuration); this
module applies a new membership to a customer and names each move, in the order docs/
segments.md gives: segments in configuration order (those no longer configured last, by
name), then the class.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from .customer import CustomerState
from .segments import SegmentRules, moved_up
from .transitions import (
    CustomerSnapshot,
    SegmentCause,
    SegmentChange,
    SegmentChangeKind,
    segment_change_id_prefix,
)


class Move(NamedTuple):
    kind: SegmentChangeKind
    segment: str | None
    from_class: str | None = None
    to_class: str | None = None


class Stamp(NamedTuple):
    """What every change made at one instant for one reason shares."""

    at_us: int
    occurred_at: datetime
    detected_at: datetime
    replayed: bool
    cause: SegmentCause
    cause_event_id: str | None


def move_to(
    rules: SegmentRules, customer: CustomerState, members: list[str], klass: str | None
) -> list[Move]:
    """Give the customer these segments (any order) and class; the moves that made."""
    moves: list[Move] = []
    if sorted(members) != customer.segments:
        before, after = set(customer.segments), set(members)
        configured = [s.name for s in rules.segments]
        gone = sorted(before.difference(configured))
        for name in [*configured, *gone]:
            if (name in before) != (name in after):
                kind = SegmentChangeKind.ENTERED_SEGMENT if name in after else SegmentChangeKind.LEFT_SEGMENT
                moves.append(Move(kind, name))
        customer.segments = sorted(after)
    if klass != customer.segment_class:
        moves.append(Move(SegmentChangeKind.CLASS_CHANGED, None, customer.segment_class, klass))
        customer.segment_class = klass
    return moves


def change_events(
    rules: SegmentRules, customer: CustomerState, moves: list[Move], stamp: Stamp, snapshot: CustomerSnapshot
) -> list[SegmentChange]:
    """One event per move, numbered on from the customer's last segment change."""
    if not moves:
        return []
    prefix = segment_change_id_prefix(customer.customer_id, customer.created_at)
    events = []
    for move in moves:
        customer.change_seq += 1
        is_class = move.kind is SegmentChangeKind.CLASS_CHANGED
        events.append(
            SegmentChange(
                event_id=f"{prefix}{customer.change_seq:08x}",
                customer_id=customer.customer_id,
                seq=customer.change_seq,
                change=move.kind,
                segment=move.segment,
                from_class=move.from_class,
                to_class=move.to_class,
                moved_up=moved_up(rules.classes, move.from_class, move.to_class) if is_class else None,
                occurred_at=stamp.occurred_at,
                detected_at=stamp.detected_at,
                replayed=stamp.replayed,
                cause=stamp.cause,
                cause_event_id=stamp.cause_event_id,
                customer=snapshot,
            )
        )
    return events
