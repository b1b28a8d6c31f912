"""Lifecycle states and the policy that maps counted orders and an instant to a state.

This module is the state table of docs/lifecycle.md, and the only place it lives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .instants import DAY_US


class State(StrEnum):
    PROSPECT = "prospect"
    ONE_TIMER = "one_timer"
    REPEAT = "repeat"
    AT_RISK = "at_risk"
    INACTIVE = "inactive"
    CHURNED = "churned"


class PolicyError(ValueError):
    """A policy whose windows contradict each other."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The four windows of docs/lifecycle.md, in microseconds."""

    one_timer_window: int = 30 * DAY_US
    at_risk_after: int = 60 * DAY_US
    inactive_after: int = 90 * DAY_US
    churned_after: int = 365 * DAY_US

    def problems(self) -> list[tuple[str, str]]:
        """(key, message) for each way this policy is unusable; empty when it is sound."""
        found: list[tuple[str, str]] = []
        for key in ("one_timer_window", "at_risk_after", "inactive_after", "churned_after"):
            if getattr(self, key) <= 0:
                found.append((key, "must be longer than zero"))
        if self.at_risk_after > self.inactive_after:
            found.append(("at_risk_after", "must not be longer than inactive_after"))
        if self.inactive_after > self.churned_after:
            found.append(("inactive_after", "must not be longer than churned_after"))
        if self.one_timer_window > self.churned_after:
            found.append(("one_timer_window", "must not be longer than churned_after"))
        return found


@dataclass(frozen=True, slots=True)
class PolicyBook:
    """The default policy and per-store overrides."""

    default: Policy = Policy()
    stores: dict[str, Policy] = field(default_factory=dict)

    def for_store(self, store_id: str | None) -> Policy:
        if store_id is None:
            return self.default
        return self.stores.get(store_id, self.default)


def state_at(policy: Policy, order_count: int, first_us: int, last_us: int, at_us: int) -> State:
    """The state of a customer with `order_count` counted orders, all at or before `at_us`."""
    if order_count == 0:
        return State.PROSPECT
    since_last = at_us - last_us
    if since_last >= policy.churned_after:
        return State.CHURNED
    if order_count == 1:
        if at_us - first_us < policy.one_timer_window:
            return State.ONE_TIMER
        return State.INACTIVE
    if since_last < policy.at_risk_after:
        return State.REPEAT
    if since_last < policy.inactive_after:
        return State.AT_RISK
    return State.INACTIVE


def next_deadline(policy: Policy, order_count: int, first_us: int, last_us: int, at_us: int) -> int | None:
    """The first instant after `at_us` at which time alone changes the state, if any."""
    if order_count == 0:
        return None
    since_last = at_us - last_us
    if since_last >= policy.churned_after:
        return None
    if order_count == 1:
        window_end = first_us + policy.one_timer_window
        if at_us < window_end:
            return window_end
        return last_us + policy.churned_after
    for threshold in (policy.at_risk_after, policy.inactive_after, policy.churned_after):
        if since_last < threshold:
            return last_us + threshold
    return None
