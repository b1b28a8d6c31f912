"""Offline replay: the core driven from files, partition by partition as the worker would.

Customers are split into partitions exactly as Kafka's default partitioner splits keyed
messages, each with its own partition clock, so a replay gives what the live worker gives
on the same input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..inputs.messages import InvalidEvent, decode_event
from ..kafka.partitioning import partition_for
from ..lifecycle import CustomerState, OrderEvent, Outcome, Partition, Transition
from ..lifecycle.events import CustomerSignedUp
from ..lifecycle.experiments import ExposureLog
from ..lifecycle.transitions import Change, SegmentChange
from ..wallclock import wall_clock_us
from .funnel_log import FunnelLog


@dataclass
class ReplayStats:
    read: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)
    segment_changes: Counter[str] = field(default_factory=Counter)
    firings: Counter[str] = field(default_factory=Counter)  # by trigger
    folded: int = 0  # orders folded into their customers' totals (limits.orders_kept)

    def add(self, other: ReplayStats) -> None:
        """Another replay's counts, of other customers."""
        self.read += other.read
        self.outcomes.update(other.outcomes)
        self.transitions.update(other.transitions)
        self.segment_changes.update(other.segment_changes)
        self.firings.update(other.firings)
        self.folded += other.folded

    @property
    def rejected(self) -> int:
        return self.outcomes[Outcome.REJECTED.value]


# a sign-up that changed nothing in the customer's record (an earlier one without contact
# data, arriving later) is still one for the funnel; erased and rejected ones are not
_NOTED = (Outcome.APPLIED, Outcome.LATE, Outcome.DUPLICATE)


class Replay:
    """Feeds raw events to per-partition cores and keeps the counts a summary needs."""

    def __init__(
        self,
        config: Config,
        *,
        rebuilding: bool = True,
        now_us: Callable[[], int] = wall_clock_us,
    ) -> None:
        self.partition_count = config.kafka.partitions
        policies, rules, scorer = config.policy_book(), config.time_rules(), config.scorer()
        self._partition_settings: dict[str, Any] = {
            "policies": policies,
            "time_rules": rules,
            "rebuilding": rebuilding,
            "segments": config.segments,
            "keep_contact": config.privacy.contact_data,
            "scorer": scorer,
            "orders_kept": config.limits.orders_kept,
            "refunds_kept": config.limits.refunds_per_order,
            "experiments": config.experiments,
            "triggers": config.triggers,
        }
        self.partitions = [self.new_partition({}, None) for _ in range(self.partition_count)]
        self.now_us = now_us
        self.stats = ReplayStats()
        # first exposures in each experiment, for the report (None: no experiment configured)
        self.exposures = ExposureLog(config.experiments) if config.experiments else None
        # sign-ups and firings, for the report's funnel
        self.funnel = FunnelLog()
        self._partition_of: dict[str, Partition] = {}
        # the customer the last event fed erased, if it did
        self.last_erased: str | None = None

    def new_partition(self, customers: dict[str, CustomerState], clock_us: int | None) -> Partition:
        """A partition of this replay's rules holding `customers` at `clock_us` (their deadlines
        indexed), as a worker takes one up from its store."""
        partition = Partition(customers, clock_us=clock_us, **self._partition_settings)
        partition.rebuild_deadline_index()
        return partition

    def _partition(self, customer_id: str) -> Partition:
        found = self._partition_of.get(customer_id)
        if found is None:
            found = self.partitions[partition_for(customer_id, self.partition_count)]
            self._partition_of[customer_id] = found
        return found

    def feed(self, raw: bytes) -> list[Change]:
        """Apply one raw event; raises InvalidEvent when it is rejected."""
        try:
            event = decode_event(raw)
        except InvalidEvent:
            self.reject()
            raise
        return self.apply(event)

    def apply(self, event: OrderEvent) -> list[Change]:
        """Apply one decoded event; raises InvalidEvent when the rules reject it."""
        self.stats.read += 1
        self.last_erased = None
        result = self._partition(event.customer_id).apply(event, self.now_us())
        if isinstance(event, CustomerSignedUp) and result.outcome in _NOTED:
            self.funnel.signed_up(event)
        self.stats.outcomes[result.outcome] += 1
        self.stats.folded += result.folded
        self._count(result.changes)
        if result.outcome is Outcome.REJECTED:
            raise InvalidEvent(result.reason or "rejected")
        if result.erased:
            self._partition_of.pop(event.customer_id, None)
            self.last_erased = event.customer_id
            if self.exposures is not None:
                self.exposures.forget(event.customer_id)
            self.funnel.forget(event.customer_id)
        return result.changes

    def reject(self) -> None:
        """Count input rejected before it could be decoded (oversized lines, bad CSV rows)."""
        self.stats.read += 1
        self.stats.outcomes[Outcome.REJECTED.value] += 1

    def advance(self, until_us: int) -> list[Change]:
        """Move every partition clock to `until_us`, in partition order."""
        return [change for _, fired in self.advance_partitions(until_us) for change in fired]

    def advance_partitions(self, until_us: int) -> Iterator[tuple[int, list[Change]]]:
        """Move every partition clock to `until_us`, in partition order: what each fired."""
        for number in range(self.partition_count):
            yield number, self.advance_partition(number, until_us)

    def advance_partition(self, number: int, until_us: int) -> list[Change]:
        """Move one partition's clock to `until_us`: what it fired."""
        fired = self.partitions[number].advance(until_us, self.now_us())
        self._count(fired)
        return fired

    def _count(self, changes: list[Change]) -> None:
        if self.exposures is not None:
            self.exposures.note(changes)
        for change in changes:
            if isinstance(change, Transition):
                self.stats.transitions[change.transition] += 1
            elif isinstance(change, SegmentChange):
                self.stats.segment_changes[change.change.value] += 1
            else:
                self.stats.firings[change.trigger] += 1
                self.funnel.fired(change)

    def customers(self) -> Iterator[CustomerState]:
        for _, customer in self.customers_by_partition():
            yield customer

    def customers_by_partition(self) -> Iterator[tuple[int, CustomerState]]:
        for number, partition in enumerate(self.partitions):
            for customer in partition.customers.values():
                yield number, customer
