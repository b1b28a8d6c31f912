"""What applying one event gave: its outcome, and the changes it made."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .instants import format_rfc3339
from .transitions import Change


class Outcome(StrEnum):
    APPLIED = "applied"
    LATE = "late"
    DUPLICATE = "duplicate"
    ERASED = "erased"
    REJECTED = "rejected"


@dataclass(slots=True)  # not frozen: one per event, and frozen dataclasses build slowly
class EventResult:
    outcome: Outcome
    # transitions and segment changes, in emission order
    changes: list[Change] = field(default_factory=list)
    reason: str | None = None
    erased: bool = False
    reason_code: str | None = None  # for counting rejections by kind: future_skew, inconsistent, folded
    folded: int = 0  # orders the event made the customer fold (see folding.py)


def future_reason(at_us: int, now_us: int) -> str:
    """Why an event too far ahead of the wall clock is rejected."""
    return (
        f"occurred_at {format_rfc3339(at_us)} is more than max_future_skew ahead of the "
        f"wall clock ({format_rfc3339(now_us)})"
    )
