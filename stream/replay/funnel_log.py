"""What a replay notes for the report's funnel (docs/triggers.md, docs/kpis.md): each
customer's first sign-up and its source, and each trigger's firings, as they happen."""

from __future__ import annotations

from typing import NamedTuple

from ..lifecycle.events import CustomerSignedUp
from ..lifecycle.instants import to_us
from ..lifecycle.transitions import TriggerFired


class SignUp(NamedTuple):
    at_us: int
    event_id: str
    source: str | None


class FunnelLog:
    def __init__(self) -> None:
        self.sign_ups: dict[str, SignUp] = {}  # customer -> their first sign-up
        # trigger -> customer -> the instant of their first firing
        self.first_firings: dict[str, dict[str, int]] = {}
        self.firings: dict[str, list[int]] = {}  # trigger -> the instant of every firing

    def signed_up(self, event: CustomerSignedUp) -> None:
        noted = SignUp(to_us(event.occurred_at), event.event_id, event.source)
        known = self.sign_ups.get(event.customer_id)
        if known is None or noted[:2] < known[:2]:
            self.sign_ups[event.customer_id] = noted

    def fired(self, firing: TriggerFired) -> None:
        at = to_us(firing.occurred_at)
        self.firings.setdefault(firing.trigger, []).append(at)
        self.first_firings.setdefault(firing.trigger, {}).setdefault(firing.customer_id, at)

    def forget(self, customer_id: str) -> None:
        """An erased customer leaves the funnel (their firings stay counted)."""
        self.sign_ups.pop(customer_id, None)
        for firings in self.first_firings.values():
            firings.pop(customer_id, None)

    def add(self, other: FunnelLog) -> None:
        """Another replay's, of other customers (its firings after these)."""
        self.sign_ups.update(other.sign_ups)
        for trigger, first in other.first_firings.items():
            self.first_firings.setdefault(trigger, {}).update(first)
        for trigger, instants in other.firings.items():
            self.firings.setdefault(trigger, []).extend(instants)
