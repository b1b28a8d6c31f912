"""The lifecycle core: the rules of docs/lifecycle.md as plain functions and data.

No Kafka, no Faust, no asyncio, no clock reads, no I/O: time comes in as parameters, and
transitions go out as return values.
"""

from .customer import CustomerState, RejectedEvent
from .events import (
    CustomerErased,
    Item,
    Money,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderRefunded,
    event_type,
)
from .partition import Partition, TimeRules
from .policy import Policy, PolicyBook, State, next_deadline, state_at
from .results import EventResult, Outcome
from .transitions import (
    CustomerSnapshot,
    Transition,
    TransitionName,
    all_transition_names,
    transition_event_id,
    transition_name,
)

__all__ = [
    "CustomerErased",
    "CustomerSnapshot",
    "CustomerState",
    "EventResult",
    "Item",
    "Money",
    "OrderCancelled",
    "OrderEvent",
    "OrderPlaced",
    "OrderRefunded",
    "Outcome",
    "Partition",
    "Policy",
    "PolicyBook",
    "RejectedEvent",
    "State",
    "TimeRules",
    "Transition",
    "TransitionName",
    "all_transition_names",
    "event_type",
    "next_deadline",
    "state_at",
    "transition_event_id",
    "transition_name",
]
