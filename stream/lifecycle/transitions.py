"""Transition events, the engine's output (schema v1), and how they are named and identified.

`schemas/v1/transition.json` is generated from these types; a test keeps the two identical.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Literal

import msgspec

from .events import EventType, Item
from .experiments import ExperimentEntry
from .policy import State

SCHEMA_VERSION = "v1"


class TransitionName(StrEnum):
    """The named transitions; every other change is called `<from>_to_<to>`."""

    BECAME_ONE_TIMER = "became_one_timer"
    BECAME_REPEAT = "became_repeat"
    RECOVERED = "recovered"
    REACTIVATED = "reactivated"
    WENT_AT_RISK = "went_at_risk"
    WENT_INACTIVE = "went_inactive"
    CHURNED = "churned"


_NAMES: dict[tuple[State, State], TransitionName] = {
    (State.PROSPECT, State.ONE_TIMER): TransitionName.BECAME_ONE_TIMER,
    (State.ONE_TIMER, State.REPEAT): TransitionName.BECAME_REPEAT,
    (State.AT_RISK, State.REPEAT): TransitionName.RECOVERED,
    (State.INACTIVE, State.REPEAT): TransitionName.REACTIVATED,
    (State.INACTIVE, State.ONE_TIMER): TransitionName.REACTIVATED,
    (State.CHURNED, State.REPEAT): TransitionName.REACTIVATED,
    (State.CHURNED, State.ONE_TIMER): TransitionName.REACTIVATED,
    (State.REPEAT, State.AT_RISK): TransitionName.WENT_AT_RISK,
    (State.ONE_TIMER, State.INACTIVE): TransitionName.WENT_INACTIVE,
    (State.REPEAT, State.INACTIVE): TransitionName.WENT_INACTIVE,
    (State.AT_RISK, State.INACTIVE): TransitionName.WENT_INACTIVE,
    (State.INACTIVE, State.CHURNED): TransitionName.CHURNED,
}


def _name(from_state: State, to_state: State) -> str:
    named = _NAMES.get((from_state, to_state))
    return named.value if named is not None else f"{from_state.value}_to_{to_state.value}"


_ALL_NAMES: dict[tuple[State, State], str] = {(a, b): _name(a, b) for a in State for b in State if a != b}


def transition_name(from_state: State, to_state: State) -> str:
    """The name of a change of state, decided by (from, to) alone."""
    return _ALL_NAMES[(from_state, to_state)]


def all_transition_names() -> list[str]:
    """Every name a transition can carry, e.g. to create one topic per name."""
    return sorted(set(_ALL_NAMES.values()))


def event_id_prefix(customer_id: str, created_at_us: int) -> str:
    """The part of a customer's transition ids fixed at the creation of their state."""
    digest = hashlib.blake2b(f"{customer_id}\x1f{created_at_us}".encode(), digest_size=12).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


def segment_change_id_prefix(customer_id: str, created_at_us: int) -> str:
    """Like `event_id_prefix`, for segment changes: their own sequence, their own ids."""
    return event_id_prefix(f"{customer_id}\x1fsegments", created_at_us)


def transition_event_id(customer_id: str, created_at_us: int, seq: int) -> str:
    """A stable, UUID-shaped id from (customer, instant their state was created, seq) alone.

    A re-emission after a crash has the same three inputs, hence the same id; a customer
    who comes back after erasure has a new creation instant, hence new ids.
    """
    return f"{event_id_prefix(customer_id, created_at_us)}{seq:08x}"


Cause = Literal["order.placed", "order.cancelled", "order.refunded", "customer.erased", "deadline"]
TRANSITION_CAUSES: frozenset[str] = frozenset(Cause.__args__)  # type: ignore[attr-defined]


class FirstOrder(msgspec.Struct, frozen=True, gc=False):
    """What the customer's first counted order looked like."""

    order_id: str
    items: list[Item] | None
    channel: str | None
    payment_method: str | None
    coupon: str | None
    store_id: str | None


class CustomerSnapshot(msgspec.Struct, frozen=True, gc=False):
    """What a marketer needs to write the email, as of the transition's `occurred_at`."""

    order_count: int
    first_order_at: datetime | None
    last_order_at: datetime | None
    spend: dict[str, int]
    first_order: FirstOrder | None
    days_since_last_order: int | None
    segments: list[str] = msgspec.field(default_factory=list)  # sorted names
    segment_class: str | None = msgspec.field(default=None, name="class")
    # contact data, when events carry it and it is kept (privacy.contact_data)
    email: str | None = None
    accepts_marketing: bool | None = None
    # the customer-base model's scores at the snapshot's instant, with `[model] path` set
    p_alive: float | None = None
    expected_orders_365d: float | None = None
    expected_value_365d: float | None = None


class CustomerScores(msgspec.Struct, frozen=True, gc=False):
    """A customer's scores from the customer-base model (docs/model.md) at an instant."""

    p_alive: float
    expected_orders_365d: float
    expected_value_365d: float | None


class Transition(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One change of a customer's lifecycle state."""

    event_id: str
    customer_id: str
    seq: int
    transition: str
    from_state: State
    to_state: State
    occurred_at: datetime
    detected_at: datetime
    replayed: bool
    cause: Cause
    cause_event_id: str | None
    customer: CustomerSnapshot
    # the experiments this change is an exposure of, with the customer's group in each
    # (docs/experiments.md); a change held out by one is kept off the per-name topic
    experiments: list[ExperimentEntry] = msgspec.field(default_factory=list)
    schema_version: Literal["v1"] = "v1"

    def exposure_name(self) -> str:
        """What an experiment's `on` names this change by."""
        return self.transition


# every event type (sign-ups and engagement move segments, never states), time, and a
# change of segment definitions
SegmentCause = Literal[EventType, "deadline", "configuration"]


class SegmentChangeKind(StrEnum):
    ENTERED_SEGMENT = "entered_segment"
    LEFT_SEGMENT = "left_segment"
    CLASS_CHANGED = "class_changed"


class SegmentChange(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A customer entering or leaving a segment, or changing class.

    `seq` counts a customer's segment changes (1, 2, 3 … without gaps), apart from the
    transitions' own `seq`. `cause` "configuration": a segment added, removed or redefined.
    """

    event_id: str
    customer_id: str
    seq: int
    change: SegmentChangeKind
    segment: str | None
    from_class: str | None = None
    to_class: str | None = None
    moved_up: bool | None = None
    occurred_at: datetime
    detected_at: datetime
    replayed: bool
    cause: SegmentCause
    cause_event_id: str | None
    customer: CustomerSnapshot
    experiments: list[ExperimentEntry] = msgspec.field(default_factory=list)  # see Transition
    schema_version: Literal["v1"] = "v1"

    def exposure_name(self) -> str:
        """What an experiment's `on` names this change by: `entered_segment:<segment>`,
        `left_segment:<segment>`, `class_changed:<class>` (the class moved to)."""
        if self.change is SegmentChangeKind.CLASS_CHANGED:
            return f"class_changed:{self.to_class or ''}"
        return f"{self.change.value}:{self.segment}"


def trigger_id_prefix(customer_id: str, created_at_us: int) -> str:
    """Like `event_id_prefix`, for trigger firings: their own sequence, their own ids."""
    return event_id_prefix(f"{customer_id}\x1ftriggers", created_at_us)


class TriggerFired(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A trigger fired (docs/triggers.md): its `on` happened and no `unless` followed within
    `after`.

    `seq` counts a customer's firings (1, 2, 3 … without gaps), apart from the transitions'
    and the segment changes' own; `event_id` derives from the customer, the creation of their
    state and `seq`, so a firing sent again after a crash has the same id."""

    event_id: str
    customer_id: str
    seq: int
    trigger: str
    occurred_at: datetime  # the firing instant
    detected_at: datetime
    replayed: bool
    cause_event_id: str  # the `on` occurrence: the event, or the change, that armed it
    # what the arming engagement carried (an `engaged:<kind>` trigger): the cart to remind of
    items: list[Item] | None = None
    cart_id: str | None = None
    customer: CustomerSnapshot
    experiments: list[ExperimentEntry] = msgspec.field(default_factory=list)  # see Transition
    schema_version: Literal["v1"] = "v1"

    def exposure_name(self) -> str:
        """What an experiment's `on` names this firing by: the trigger's name."""
        return self.trigger


Change = Transition | SegmentChange | TriggerFired
