"""Builders of order events for tests, written as a shop would send them."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from stream.inputs.messages import decode_event
from stream.lifecycle import OrderEvent, Partition, PolicyBook, TimeRules, Transition
from stream.lifecycle.instants import DAY_US, format_rfc3339, parse_rfc3339

T0 = parse_rfc3339("2025-03-01T10:00:00Z")
NOW = parse_rfc3339("2031-01-01T00:00:00Z")
_ids = itertools.count(1)


def at(days: float = 0, us: int = 0) -> int:
    return T0 + int(days * DAY_US) + us


def _event(kind: str, customer: str, when: int, event_id: str | None, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": event_id or f"ev{next(_ids)}",
        "customer_id": customer,
        "occurred_at": format_rfc3339(when),
        **fields,
    }


def placed(
    customer: str,
    order: str,
    when: int,
    amount: int = 1000,
    currency: str = "EUR",
    event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return _event(
        "order.placed",
        customer,
        when,
        event_id,
        order_id=order,
        total={"amount_minor": amount, "currency": currency},
        **extra,
    )


def cancelled(customer: str, order: str, when: int, event_id: str | None = None) -> dict[str, Any]:
    return _event("order.cancelled", customer, when, event_id, order_id=order)


def refunded(
    customer: str, order: str, when: int, amount: int, currency: str = "EUR", event_id: str | None = None
) -> dict[str, Any]:
    return _event(
        "order.refunded",
        customer,
        when,
        event_id,
        order_id=order,
        amount={"amount_minor": amount, "currency": currency},
    )


def erased(customer: str, when: int, event_id: str | None = None) -> dict[str, Any]:
    return _event("customer.erased", customer, when, event_id)


def decoded(event: dict[str, Any]) -> OrderEvent:
    return decode_event(orjson.dumps(event))


def new_partition(
    policies: PolicyBook | None = None, rules: TimeRules | None = None, rebuilding: bool = False
) -> Partition:
    return Partition({}, policies, rules, rebuilding=rebuilding)


def apply_all(partition: Partition, events: list[dict[str, Any]], now: int = NOW) -> list[Transition]:
    out: list[Transition] = []
    for event in events:
        out.extend(partition.apply(decoded(event), now).changes)
    return out


def names(transitions: list[Transition]) -> list[str]:
    return [t.transition for t in transitions]
