"""What one partition adds to the worker's metrics: its customers by state, segment and
class members, buyers, its clock, and the changes it makes.

The gauges are sums over the partitions a worker owns; each partition keeps its own part,
so that letting a partition go takes exactly its part away and taking it up (or back)
adds it again.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..lifecycle import CustomerState, State
from ..lifecycle.transitions import Change, SegmentChange, TriggerFired
from .customer_store import WrittenCustomer
from .metrics import WorkerMetrics, buyers_label
from .state import CustomerHead


def pending_of(customer: CustomerHead | CustomerState) -> int:
    return len(customer.triggers.pending) if customer.triggers is not None else 0


# the one-timer's two ways out of its window, counted as the live second-purchase conversion
_ONE_TIMER_OUTCOMES = {
    (State.ONE_TIMER, State.REPEAT): "converted",
    (State.ONE_TIMER, State.INACTIVE): "lapsed",
}


@dataclass
class PartitionCounts:
    metrics: WorkerMetrics
    number: int
    states: Counter[State] = field(default_factory=Counter)
    segment_members: Counter[str] = field(default_factory=Counter)
    class_members: Counter[str] = field(default_factory=Counter)
    buyers: Counter[str] = field(default_factory=Counter)  # by `buyers_label`
    pending_firings: int = 0
    clock_gauge: Any = None  # this partition's lifecycle_partition_clock

    def took_up(self, heads: list[CustomerHead]) -> None:
        """The partition's customers as read from the table, added to the gauges."""
        self.states.update(c.state for c in heads)
        self.segment_members.update(name for c in heads for name in c.segments)
        self.class_members.update(c.segment_class for c in heads if c.segment_class is not None)
        self.buyers.update(label for c in heads if (label := buyers_label(c.order_count)) is not None)
        self.pending_firings = sum(pending_of(c) for c in heads)
        self.add_to_gauges(1)

    def add_to_gauges(self, sign: int) -> None:
        """Add this partition's part to the gauges (1), or take it away (-1)."""
        metrics = self.metrics
        for state, count in self.states.items():
            metrics.customers.labels(state.value).inc(sign * count)
        for segment, count in self.segment_members.items():
            metrics.segment_members.labels(segment).inc(sign * count)
        for klass, count in self.class_members.items():
            metrics.class_members.labels(klass).inc(sign * count)
        for label, count in self.buyers.items():
            metrics.buyers.labels(label).inc(sign * count)
        if sign > 0:
            metrics.trigger_pending.labels(str(self.number)).set(self.pending_firings)

    def let_go(self) -> None:
        """The partition is no longer this worker's: its part leaves the gauges."""
        self.add_to_gauges(-1)
        with contextlib.suppress(KeyError):  # a partition taken up but never clocked
            self.metrics.partition_clock.remove(str(self.number))
        with contextlib.suppress(KeyError):
            self.metrics.trigger_pending.remove(str(self.number))
        self.clock_gauge = None

    def count(self, changes: list[Change], changed: list[WrittenCustomer], clock_us: int | None) -> None:
        """A message's changes and the customers it wrote, and the partition clock after it."""
        metrics = self.metrics
        for transition in changes:
            for entry in transition.experiments:
                metrics.labelled(metrics.experiment_exposures, entry.name, entry.group).inc()
            if isinstance(transition, SegmentChange):
                self._count_segment_change(transition)
                continue
            if isinstance(transition, TriggerFired):
                metrics.labelled(metrics.trigger_firings, transition.trigger).inc()
                continue
            metrics.labelled(metrics.transitions, transition.transition).inc()
            outcome = _ONE_TIMER_OUTCOMES.get((transition.from_state, transition.to_state))
            if outcome is not None:
                metrics.labelled(metrics.one_timer_outcomes, outcome).inc()
            if transition.transition == "became_repeat":
                snap = transition.customer
                if snap.first_order_at is not None and snap.last_order_at is not None:
                    metrics.second_purchase.observe(
                        (snap.last_order_at - snap.first_order_at).total_seconds()
                    )
        for change in changed:
            after = change.state.state if change.state is not None else None
            if change.before != after:
                for state, step in ((change.before, -1), (after, 1)):
                    if state is not None:
                        self.states[state] += step
                        metrics.labelled(metrics.customers, state.value).inc(step)
            pending_after = pending_of(change.state) if change.state is not None else 0
            if pending_after != change.pending_before:
                self.pending_firings += pending_after - change.pending_before
                metrics.trigger_pending.labels(str(self.number)).set(self.pending_firings)
            buyers_before = buyers_label(change.orders_before)
            buyers_after = buyers_label(change.state.order_count) if change.state is not None else None
            if buyers_before != buyers_after:
                for label, step in ((buyers_before, -1), (buyers_after, 1)):
                    if label is not None:
                        self.buyers[label] += step
                        metrics.labelled(metrics.buyers, label).inc(step)
        if clock_us is not None:
            if self.clock_gauge is None:  # removed when the partition is let go
                self.clock_gauge = metrics.partition_clock.labels(str(self.number))
            self.clock_gauge.set(clock_us / 1e6)

    def _count_segment_change(self, change: SegmentChange) -> None:
        metrics = self.metrics
        if change.segment is not None:
            step = 1 if change.change == "entered_segment" else -1
            self.segment_members[change.segment] += step
            metrics.labelled(metrics.segment_members, change.segment).inc(step)
            metrics.labelled(metrics.segment_changes, change.segment, change.change.value).inc()
            return
        for klass, step in ((change.from_class, -1), (change.to_class, 1)):
            if klass is not None:
                self.class_members[klass] += step
                metrics.labelled(metrics.class_members, klass).inc(step)
        metrics.labelled(metrics.class_changes, "up" if change.moved_up else "down").inc()
