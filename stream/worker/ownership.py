"""The partitions this worker owns: taken up from the tables on the first message after an
assignment (recovery is then complete), let go of at a revocation, and kept through the
rebalance when they come back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..collector import few_collections
from ..config import Config
from ..lifecycle import Partition
from ..lifecycle.customer import Scorer
from ..lifecycle.experiments import GoalReached
from ..lifecycle.instants import format_rfc3339
from ..lifecycle.segments import SegmentRules
from .counting import PartitionCounts
from .customer_store import TableCustomers, TableErasures
from .faust_internals.tables import partition_items
from .metrics import WorkerMetrics
from .offsets import PartitionOffsets
from .outputs import Outputs
from .resends import Resends
from .state import (
    ClocksEntry,
    CustomerHead,
    PendingErasure,
    StoredHead,
    clocks_entry_of,
    decode_head,
    decode_pending_erasures,
)

log = logging.getLogger(__name__)


class CatchUp(NamedTuple):
    """Where a tick is taking the partition clock, a step at a time."""

    to_us: int
    tick_offset: int


@dataclass
class PartitionRuntime:
    core: Partition
    customers: TableCustomers
    counts: PartitionCounts  # its part of the worker's metrics
    offsets: PartitionOffsets
    persisted_clock: int | None = None
    catch_up: CatchUp | None = None
    # orders events and late ones since the last look at their share; see `Worker._watch_late_share`
    recent_events: int = 0
    recent_late: int = 0
    erasing: list[PendingErasure] = field(default_factory=list)
    # customers last evaluated under other segment definitions (None: none, all up to date);
    # see `Worker._reevaluate_segments`
    reevaluate: list[str] | None = None


class Ownership:
    """The partitions owned (a core each), and those parked during a rebalance."""

    def __init__(
        self,
        config: Config,
        tables: tuple[Any, Any, Any],
        outputs: Outputs,
        resends: Resends,
        scorer: Scorer | None,
        metrics: WorkerMetrics,
    ) -> None:
        """`tables`: the customers, clocks and erasures tables."""
        self.config = config
        self.table, self.clocks, self.erasures_table = tables
        self.outputs = outputs
        self.resends = resends
        self.metrics = metrics
        self.policies = config.policy_book()
        self.time_rules = config.time_rules()
        self.scorer = scorer
        self.segment_fingerprint = config.segments.fingerprint()
        # per partition, a share of the worker's decoded customers
        self.keep_decoded = config.worker.decoded_customers // config.kafka.partitions
        self.partitions: dict[int, PartitionRuntime] = {}
        # revoked, until the assignment that follows; see `regain`
        self.parked: dict[int, PartitionRuntime] = {}

    def take_up(self, numbers: Iterable[int]) -> None:
        """Build cores for newly owned partitions from the table, and re-send what their
        uncommitted messages produced."""
        wanted = {n for n in numbers if n not in self.partitions}
        if not wanted:
            return
        with few_collections():
            self._take_up(wanted)

    def _take_up(self, wanted: set[int]) -> None:
        for number in wanted:
            self.parked.pop(number, None)
            self.resends.forget(number)  # found again in the table below
        count = self.config.kafka.partitions
        states: dict[int, list[CustomerHead]] = {n: [] for n in wanted}
        clocks: dict[int, int] = {}
        recorded: dict[int, int] = {}
        erasing: dict[int, list[PendingErasure]] = {}
        # partitions whose customers were last evaluated under no segments at all
        fingerprints: dict[int, str] = {n: SegmentRules().fingerprint() for n in wanted}
        # iterated, not looked up: a lookup during a message reads that message's partition only
        for key, raw in self.clocks.items():
            kind, number = clocks_entry_of(key)
            if number not in wanted:
                continue
            if kind is ClocksEntry.CLOCK:
                clocks[number] = int(raw)
            elif kind is ClocksEntry.ORDERS_THROUGH:
                recorded[number] = max(recorded.get(number, -1), int(raw))
            elif kind is ClocksEntry.ERASING:
                erasing[number] = decode_pending_erasures(raw)
            elif kind is ClocksEntry.SEGMENTS:
                fingerprints[number] = raw.decode()
        customers = (
            (number, key, raw)
            for number in sorted(wanted)
            for key, raw in partition_items(self.table, number, count)
        )
        for number, key, raw in customers:
            customer_id = key.decode()
            stored = decode_head(raw)
            states[number].append(stored.state)
            if stored.partition_clock is not None:
                clocks[number] = max(clocks.get(number, stored.partition_clock), stored.partition_clock)
            through = self._orders_through(stored)
            if through is not None:
                recorded[number] = max(recorded.get(number, through), through)
            self.resends.customer(customer_id, number, stored, raw)
        for number in wanted:
            self.partitions[number] = self._runtime(
                number, states[number], clocks.get(number), recorded.get(number), erasing.get(number, [])
            )
            if fingerprints[number] != self.segment_fingerprint:
                self.partitions[number].reevaluate = [c.customer_id for c in states[number]]

    def _runtime(
        self,
        number: int,
        states: list[CustomerHead],
        clock: int | None,
        recorded_through: int | None,
        erasing: list[PendingErasure],
    ) -> PartitionRuntime:
        customers = TableCustomers(
            self.table,
            number,
            self._changelog_writer(number),
            keep_decoded=self.keep_decoded,
            count_read=self._count_read,
        )
        limits = self.config.limits
        core = Partition(
            customers,
            self.policies,
            self.time_rules,
            clock_us=clock,
            erasures=TableErasures(self.erasures_table, number, before_write=customers.flush),
            segments=self.config.segments,
            keep_contact=self.config.privacy.contact_data,
            scorer=self.scorer,
            orders_kept=limits.orders_kept,
            refunds_kept=limits.refunds_per_order,
            experiments=self.config.experiments,
            on_goal=self._count_goal,
            triggers=self.config.triggers,
        )
        core.rebuild_deadline_index(states)
        counts = PartitionCounts(self.metrics, number)
        offsets = PartitionOffsets(number, self.metrics, recorded_through=recorded_through)
        runtime = PartitionRuntime(core, customers, counts, offsets, persisted_clock=clock, erasing=erasing)
        self.resends.erasures(number, erasing, customers)
        counts.took_up(states)
        log.info(
            "took up partition %d: %d customers, clock %s, orders processed through %s",
            number,
            len(states),
            format_rfc3339(core.clock_us) if core.clock_us is not None else "not started",
            recorded_through,
        )
        return runtime

    def _changelog_writer(self, number: int) -> Callable[[bytes, bytes | None], None]:
        return lambda key, value: self.outputs.changelog(number, key, value)

    def _count_goal(self, reached: GoalReached) -> None:
        metrics = self.metrics
        metrics.labelled(metrics.experiment_goals, reached.experiment, reached.group).inc()

    def _count_read(self, from_memory: bool) -> None:
        metrics = self.metrics
        metrics.labelled(metrics.customer_reads, "memory" if from_memory else "store").inc()

    def _orders_through(self, stored: StoredHead) -> int | None:
        if stored.orders_through is not None:
            return stored.orders_through
        # a record written before `orders_through` was kept: the message that wrote it
        if stored.written_by is not None and stored.written_by[0] == self.config.topics.orders:
            return stored.written_by[1]
        return None

    def let_go(self, numbers: Iterable[int]) -> None:
        """Partitions revoked: their cores are kept aside until the assignment that follows
        (see `regain`)."""
        for number in numbers:
            runtime = self.partitions.pop(number, None)
            if runtime is None:
                continue
            runtime.customers.flush()
            runtime.counts.let_go()
            runtime.catch_up = None
            self.parked[number] = runtime
            log.info("let go of partition %d", number)

    def regain(self, numbers: Iterable[int]) -> None:
        """The assignment after a revocation: partitions assigned back to this worker keep
        the cores they had; the others' are dropped.

        A rebalance revokes every partition and assigns them anew, and a worker mostly gets
        its own back: building their cores again from the table meant reading every local
        customer (15 s for 1M here) in the middle of a fail-over. In between, nobody else
        owned them (the assignment follows the revocation in the same rebalance), and this
        worker wrote nothing: the table holds what the cores were built on and kept up with.
        """
        parked, self.parked = self.parked, {}
        for number in parked.keys() - set(numbers):
            self.resends.forget(number)
        for number in set(numbers) & parked.keys():
            if number in self.partitions:
                continue  # taken up afresh in between
            runtime = parked[number]
            runtime.offsets.regained()
            runtime.counts.add_to_gauges(1)
            self.partitions[number] = runtime
            log.info("kept partition %d through the rebalance", number)
