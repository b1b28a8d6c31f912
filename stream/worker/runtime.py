"""The live worker's logic, apart from Faust: one message in, table writes and sends out.

`Worker` holds one `Partition` core per partition this process owns, taken up lazily from
the table on the first message after an assignment (that is when recovery is complete).
It knows nothing of Faust beyond a table mapping and a `send` callable, so it is tested
directly as well as through the real broker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from prometheus_client import CollectorRegistry

from ..collector import few_collections
from ..config import Config
from ..inputs.messages import (
    InvalidEvent,
    Tick,
    TopicSource,
    customer_record,
    decode_event,
    decode_tick,
    encode,
    rejection,
)
from ..kafka.partitioning import partition_for
from ..kafka.topics import per_name_topic, per_segment_topic
from ..lifecycle import CustomerState, Outcome, Partition, Transition, event_type
from ..lifecycle.instants import format_rfc3339, from_us, to_us
from ..lifecycle.partition import back_after_erasure, erasure_key
from ..lifecycle.segments import SegmentRules
from ..lifecycle.transitions import Change
from ..wallclock import wall_clock_us
from .counting import PartitionCounts
from .faust_internals.tables import partition_items
from .metrics import WorkerMetrics
from .state import (
    CUSTOMERS_TABLE,
    ERASURES_TABLE,
    ClocksEntry,
    CustomerHead,
    Outbox,
    PendingErasure,
    StoredHead,
    TableCustomers,
    TableErasures,
    WrittenCustomer,
    changelog_topic,
    clocks_entry_of,
    clocks_key,
    decode_head,
    decode_pending_erasures,
    decode_stored,
    encode_pending_erasures,
)

log = logging.getLogger(__name__)


class Output(NamedTuple):
    """One message for the driver to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None


# Deadlines fired per step when a tick finds the clock far behind (after a pause, a whole
# backlog is due at once: 1M customers took 35 s in one go, with the event loop blocked,
# health checks unanswered and every produced message held in memory).
CATCH_UP_STEP = 500
# looks in a row (one a tick interval) at a consumer fetched past what was processed before
# the partition is read again; see `Worker.fetched_past`
FETCHED_PAST_LOOKS = 3
# events per look at a partition's share of late events
LATE_SHARE_WINDOW = 1000


class Reread(NamedTuple):
    """An orders partition being read again from `expected` (see `Worker._past_a_hole`)."""

    expected: int  # the first offset not processed in this ownership
    lowest_past: int  # the lowest offset that arrived past it


class CatchUp(NamedTuple):
    """Where a tick is taking the partition clock, a step at a time."""

    to_us: int
    tick_offset: int


class FetchedPast(NamedTuple):
    """A partition's fetch position seen past its first unprocessed offset, and how many
    looks in a row found both where they were."""

    position: int
    first_unprocessed: int
    looks: int


@dataclass
class PartitionRuntime:
    core: Partition
    customers: TableCustomers
    counts: PartitionCounts  # its part of the worker's metrics
    persisted_clock: int | None = None
    last_order_offset: int | None = None
    catch_up: CatchUp | None = None
    reread: Reread | None = None
    # The last orders offset whose processing the partition's state records: every customer
    # record carries it (`orders_through`), and an orders message that writes no customer
    # leaves it in the clocks table. Commits and changelog can disagree (faust committed
    # offsets nobody processed, docs/field-notes.md); the state says where processing is.
    recorded_through: int | None = None
    # set once the partition was sent back to recorded_through + 1 (see `Worker.rewinds`)
    rewound: bool = False
    # orders events and late ones since the last look at their share; see `_watch_late_share`
    recent_events: int = 0
    recent_late: int = 0
    erasing: list[PendingErasure] = field(default_factory=list)
    # customers last evaluated under other segment definitions (None: none, all up to date);
    # see `_reevaluate_segments`
    reevaluate: list[str] | None = None
    # seen fetched past the first unprocessed offset; see `Worker.fetched_past`
    fetched_past: FetchedPast | None = None


class Worker:
    """Feeds messages of the orders and ticks topics to per-partition cores."""

    def __init__(
        self,
        config: Config,
        customers_table: Any,
        clocks_table: Any,
        erasures_table: Any,
        *,
        now_us: Callable[[], int] = wall_clock_us,
        committed_offset: Callable[[str, int], int | None] = lambda topic, partition: None,
        owned_partitions: Callable[[], Iterable[int]] = lambda: (),
        resend_changelog: Callable[[str, int, bytes, bytes | None], None] = lambda table, n, key, value: None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.config = config
        self.table = customers_table
        self.clocks = clocks_table
        self.erasures_table = erasures_table
        self.pending: list[Output] = []
        self.now_us = now_us
        self.committed_offset = committed_offset
        self.owned_partitions = owned_partitions
        self.resend_changelog = resend_changelog
        self.policies = config.policy_book()
        self.time_rules = config.time_rules()
        self.scorer = config.scorer()
        self.partitions: dict[int, PartitionRuntime] = {}
        # revoked, until the assignment that follows; see `regain`
        self.parked: dict[int, PartitionRuntime] = {}
        self.metrics = metrics or WorkerMetrics(CollectorRegistry())
        self.topics = config.topics
        self.segment_fingerprint = config.segments.fingerprint()
        self.customers_changelog = changelog_topic(config.worker.app_id, CUSTOMERS_TABLE)
        # per partition, a share of the worker's decoded customers
        self.keep_decoded = config.worker.decoded_customers // config.kafka.partitions

    # -- ownership ----------------------------------------------------------------------

    def take_up(self, numbers: Iterable[int]) -> None:
        """Build cores for newly owned partitions from the table, and re-send their outboxes."""
        wanted = {n for n in numbers if n not in self.partitions}
        if not wanted:
            return
        with few_collections():
            self._take_up(wanted)

    def _take_up(self, wanted: set[int]) -> None:
        for number in wanted:
            self.parked.pop(number, None)
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
            self._resend_if_uncommitted(customer_id, number, stored, raw)
        for number in wanted:
            customers = TableCustomers(
                self.table,
                number,
                self._changelog_writer(number),
                keep_decoded=self.keep_decoded,
                count_read=self._count_read,
            )
            clock = clocks.get(number)
            core = Partition(
                customers,
                self.policies,
                self.time_rules,
                clock_us=clock,
                erasures=TableErasures(self.erasures_table, number, before_write=customers.flush),
                segments=self.config.segments,
                keep_contact=self.config.privacy.contact_data,
                scorer=self.scorer,
                orders_kept=self.config.limits.orders_kept,
                refunds_kept=self.config.limits.refunds_per_order,
            )
            core.rebuild_deadline_index(states[number])
            counts = PartitionCounts(self.metrics, number)
            runtime = PartitionRuntime(
                core, customers, counts, persisted_clock=clock, recorded_through=recorded.get(number)
            )
            runtime.erasing = erasing.get(number, [])
            self._resend_erasures(number, runtime.erasing, customers)
            if fingerprints[number] != self.segment_fingerprint:
                runtime.reevaluate = [c.customer_id for c in states[number]]
            counts.took_up(states[number])
            self.partitions[number] = runtime
            log.info(
                "took up partition %d: %d customers, clock %s, orders processed through %s",
                number,
                len(states[number]),
                format_rfc3339(core.clock_us) if core.clock_us is not None else "not started",
                runtime.recorded_through,
            )

    def processed_through(self, number: int) -> int | None:
        """The last orders offset of partition `number` processed in this ownership (None:
        none yet, or not owned): what the commit protocol may commit up to."""
        runtime = self.partitions.get(number)
        return None if runtime is None else runtime.last_order_offset

    def _count_read(self, from_memory: bool) -> None:
        metrics = self.metrics
        metrics.labelled(metrics.customer_reads, "memory" if from_memory else "store").inc()

    def _orders_through(self, stored: StoredHead) -> int | None:
        if stored.orders_through is not None:
            return stored.orders_through
        # a record written before `orders_through` was kept: the message that wrote it
        if stored.written_by is not None and stored.written_by[0] == self.topics.orders:
            return stored.written_by[1]
        return None

    def fetched_past(self, numbers: Iterable[int], position: Callable[[int], int | None]) -> dict[int, int]:
        """Partitions whose consumer has fetched past the first offset not processed, and
        stays there with nothing processed: where to read each again from.

        faust drops what the consumer fetches for a partition it holds paused, as it does
        while restoring tables after a rebalance; its seek to the committed offset can come
        before such a fetch, and a partition with nothing more to read then never shows the
        hole (a fail-over benchmark stalled so with one order on each partition taken over).
        Reported once `FETCHED_PAST_LOOKS` looks in a row find the position and the first
        unprocessed offset where they were, so messages on their way to the stream are not
        taken for lost (a seek back would only deliver them twice, which the worker takes in
        its stride).
        """
        rereads = {}
        for number in numbers:
            runtime = self.partitions.get(number)
            if runtime is None:
                continue
            expected = self._first_unprocessed(runtime, number)
            fetched = position(number)
            if expected is None or fetched is None or fetched <= expected:
                runtime.fetched_past = None
                continue
            seen = runtime.fetched_past
            same = seen is not None and (seen.position, seen.first_unprocessed) == (fetched, expected)
            looks = seen.looks + 1 if same and seen is not None else 1
            runtime.fetched_past = FetchedPast(fetched, expected, looks)
            if looks < FETCHED_PAST_LOOKS:
                continue
            log.warning(
                "orders partition %d: fetched up to %d, nothing processed from %d; reading the "
                "partition again from %d",
                number,
                fetched,
                expected,
                expected,
            )
            self.metrics.rereads.labels(str(number)).inc()
            runtime.fetched_past = None
            rereads[number] = expected
        return rereads

    def rewinds(self, numbers: Iterable[int]) -> dict[int, int]:
        """Partitions to read again, and from where: those whose committed offset is past the
        message after the last one their state records as processed, with nothing processed
        since they were taken up (a message arriving is checked as it comes; see
        `_past_a_hole`). Their orders would otherwise never be processed: the committed offset
        says they were."""
        rewinds = {}
        for number in numbers:
            runtime = self.partitions.get(number)
            if (
                runtime is None
                or runtime.rewound
                or runtime.last_order_offset is not None
                or runtime.recorded_through is None
            ):
                continue
            resume = runtime.recorded_through + 1
            committed = self.committed_offset(self.topics.orders, number)
            if committed is None or committed <= resume:
                continue
            log.warning(
                "orders partition %d: committed offset %d is past the last message the state records "
                "as processed (%d); reading the partition again from %d",
                number,
                committed,
                runtime.recorded_through,
                resume,
            )
            self.metrics.rereads.labels(str(number)).inc()
            runtime.rewound = True
            rewinds[number] = resume
        return rewinds

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
        for number in set(numbers) & parked.keys():
            if number in self.partitions:
                continue  # taken up afresh in between
            runtime = parked[number]
            runtime.reread = None
            runtime.rewound = False
            runtime.counts.add_to_gauges(1)
            self.partitions[number] = runtime
            log.info("kept partition %d through the rebalance", number)

    def _uncommitted(self, number: int, source: tuple[str, int]) -> bool:
        """True if the message (topic, offset) of partition `number` is past the committed offset."""
        topic, offset = source
        committed = self.committed_offset(topic, number)
        return committed is None or offset >= committed

    def _resend_if_uncommitted(self, customer_id: str, number: int, stored: StoredHead, raw: bytes) -> None:
        """Send again what a message past the committed offset produced for this customer.

        Offsets are committed only after every send is flushed, so an output lost in a crash
        belongs to such a message, and its redelivery changes nothing (it is a duplicate).
        """
        key = customer_id.encode()
        self._resend_outboxes(number, key, stored.outboxes)
        if stored.written_by is not None and self._uncommitted(number, stored.written_by):
            # The local store is written before the changelog: after a crash this record may
            # exist here only, and the message that wrote it will be redelivered as a
            # duplicate that writes nothing. Sending it again keeps the changelog, and so any
            # later owner of the partition, equal to what this worker holds.
            self._emit_changelog(number, key, raw)
            state = decode_stored(raw).state
            record = customer_record(state, stored.partition_clock, self.scorer)
            self._emit(self.topics.customer_state, key, encode(record), number)

    def _resend_erasures(
        self, number: int, pending: list[PendingErasure], customers: Mapping[str, CustomerState]
    ) -> None:
        """Send again what an erasure past the committed offset sent; see PendingErasure."""
        for erasure in pending:
            key = erasure.customer_id.encode()
            self._resend_outboxes(number, key, erasure.outboxes)
            if not self._uncommitted(number, erasure.written_by):
                continue
            marker = erasure.marker.encode()
            self.resend_changelog(ERASURES_TABLE, number, marker, str(erasure.erased_at).encode())
            # A customer back since as a new one had its record sent again (take-up sends
            # customers first): a tombstone after it would erase the new life downstream.
            customer = customers.get(erasure.customer_id)
            if customer is None or not back_after_erasure(customer, erasure.erased_at):
                self._emit_changelog(number, key, None)
                self._emit(self.topics.customer_state, key, None, number)

    def _resend_outboxes(self, number: int, key: bytes, outboxes: list[Outbox]) -> None:
        for outbox in outboxes:
            if not self._undelivered(number, outbox):
                continue
            for sent_raw in outbox.changes:
                sent = orjson.loads(sent_raw)
                if "change" in sent:  # a segment change's kind; a transition has none
                    self._send_segment_change(key, sent_raw, sent["segment"], fresh=not sent["replayed"])
                else:
                    self._send_transition(key, sent_raw, sent["transition"], fresh=not sent["replayed"])
                self.metrics.resent.inc()

    def _undelivered(self, number: int, outbox: Outbox) -> bool:
        return self._uncommitted(number, (outbox.source_topic, outbox.source_offset))

    # -- messages -----------------------------------------------------------------------

    def on_message(
        self, topic: str, number: int, offset: int, key: bytes | None, value: bytes | None
    ) -> int | None:
        """Handle one message of the orders or ticks topic, partition `number`.

        Returns None, or, for an orders message that arrived past offsets this worker never
        processed (and was not processed either), the offset to read the partition again from.
        """
        if number not in self.partitions:
            # every owned partition in one sweep of the table: a sweep reads all local data
            self.take_up({number, *self.owned_partitions()})
        runtime = self.partitions[number]
        if topic == self.topics.orders and self._past_a_hole(runtime, number, offset):
            assert runtime.reread is not None
            return runtime.reread.expected
        if runtime.reevaluate is not None:
            self._reevaluate_segments(runtime, number, topic, offset)
        raw = value or b""
        if topic == self.topics.ticks:
            self._on_tick(runtime, number, offset, raw)
            return None
        self._on_order(runtime, number, topic, offset, key, raw)
        return None

    def _first_unprocessed(self, runtime: PartitionRuntime, number: int) -> int | None:
        """The first orders offset of partition `number` not yet processed, None if unknown.

        Before the first message of this ownership the state says which came last; the
        committed offset only says what faust committed, so it is the last resort.
        """
        if runtime.last_order_offset is not None:
            return runtime.last_order_offset + 1
        if runtime.recorded_through is not None:
            return runtime.recorded_through + 1
        return self.committed_offset(self.topics.orders, number)

    def _past_a_hole(self, runtime: PartitionRuntime, number: int, offset: int) -> bool:
        """True when `offset` lies past orders offsets not yet processed in this ownership.

        faust can drop a message on its way to the stream around a rebalance (its fetcher
        records a message as read when the flow stops before the message was handed over;
        docs/field-notes.md) and hand over the next one. Such a message is left unprocessed
        and the partition read again from the first offset missing. Offsets with no message
        (a transactional producer's markers) show as the same first offset arriving again
        after the re-read: that gap is real, and counted as skipped.
        """
        first_unprocessed = self._first_unprocessed(runtime, number)
        previous = None if first_unprocessed is None else first_unprocessed - 1
        if previous is None or offset <= previous + 1:
            runtime.reread = None
            runtime.last_order_offset = offset
            return False
        reread = runtime.reread
        if reread is not None and reread.expected == previous + 1 and offset == reread.lowest_past:
            skipped = offset - previous - 1
            log.warning(
                "orders partition %d: offset %d follows %d: %d message(s) skipped (no message there "
                "on a re-read: transaction markers?)",
                number,
                offset,
                previous,
                skipped,
            )
            self.metrics.skipped_orders.labels(str(number)).inc(skipped)
            runtime.reread = None
            runtime.last_order_offset = offset
            return False
        if reread is None or reread.expected != previous + 1:
            log.warning(
                "orders partition %d: offset %d arrived before %d; reading the partition again from %d",
                number,
                offset,
                previous + 1,
                previous + 1,
            )
            self.metrics.rereads.labels(str(number)).inc()
            runtime.reread = Reread(previous + 1, offset)
        elif offset < reread.lowest_past:
            runtime.reread = Reread(previous + 1, offset)
        return True

    def _on_order(
        self, runtime: PartitionRuntime, number: int, topic: str, offset: int, key: bytes | None, raw: bytes
    ) -> None:
        try:
            event = decode_event(raw)
        except InvalidEvent as invalid:
            self._dead_letter(topic, number, offset, key, raw, str(invalid), invalid.kind)
            self._publish(runtime, number, topic, offset, [], order_offset=offset)
            return
        owner = partition_for(event.customer_id, self.config.kafka.partitions)
        if owner != number:
            # Keyed otherwise by its producer: a customer's state lives in one partition only,
            # so the event goes to that partition of the orders topic, keyed by customer.
            self._emit(self.topics.orders, event.customer_id.encode(), raw, owner)
            self.metrics.rerouted.inc()
            self._publish(runtime, number, topic, offset, [], order_offset=offset)
            return
        now = self.now_us()
        result = runtime.core.apply(event, now)
        self.metrics.labelled(self.metrics.events, event_type(event), result.outcome.value).inc()
        self._watch_late_share(runtime, number, result.outcome is Outcome.LATE)
        if result.outcome is Outcome.REJECTED:
            kind = result.reason_code or "rejected"
            self._dead_letter(topic, number, offset, key, raw, result.reason or "rejected", kind)
        else:
            self.metrics.event_time_lag.observe((now - to_us(event.occurred_at)) / 1e6)
        if result.folded:
            self.metrics.orders_folded.inc(result.folded)
        erased = event.customer_id if result.erased else None
        self._publish(runtime, number, topic, offset, result.changes, erased, order_offset=offset)

    def _watch_late_share(self, runtime: PartitionRuntime, number: int, late: bool) -> None:
        """Say so when many events of a partition arrive late: every late event is applied
        at the partition clock, not at its own instant, so a producer replaying an export out
        of time order (newest first, say) gets other transitions than the history had."""
        runtime.recent_events += 1
        runtime.recent_late += late
        if runtime.recent_events < LATE_SHARE_WINDOW:
            return
        share = runtime.recent_late / runtime.recent_events
        if share > self.config.time.late_share_warning:
            log.warning(
                "orders partition %d: %d of the last %d events were late (older than the partition "
                "clock); send history in occurred_at order (lifecycle send sorts files)",
                number,
                runtime.recent_late,
                runtime.recent_events,
            )
            self.metrics.late_share_warnings.labels(str(number)).inc()
        runtime.recent_events = runtime.recent_late = 0

    def _reevaluate_segments(self, runtime: PartitionRuntime, number: int, topic: str, offset: int) -> None:
        """Segments were added, removed or redefined since this partition's customers were last
        evaluated: each difference is a change at the partition clock, marked replayed.

        Done at the partition's first message after it is taken up, because a table write
        goes to the changelog partition of the message being handled.
        """
        changes: list[Change] = []
        customer_ids, runtime.reevaluate = runtime.reevaluate or [], None
        for customer_id in customer_ids:
            customer = runtime.customers.get(customer_id)
            if customer is not None:
                changes += runtime.core.reevaluate_segments(customer, self.now_us())
        if customer_ids:
            log.info(
                "partition %d: segment definitions changed; %d customers re-evaluated, %d changes (replayed)",
                number,
                len(customer_ids),
                len(changes),
            )
        self._write_clocks(
            runtime, clocks_key(ClocksEntry.SEGMENTS, number), self.segment_fingerprint.encode()
        )
        self._publish(runtime, number, topic, offset, changes)

    def _on_tick(self, runtime: PartitionRuntime, number: int, offset: int, raw: bytes) -> None:
        try:
            tick = decode_tick(raw)
        except InvalidEvent:
            return  # ticks are ours; a bad one is dropped, the next one will do
        runtime.catch_up = CatchUp(to_us(tick.at), offset)
        self.catch_up(number)
        if runtime.catch_up is not None:
            log.info(
                "partition %d: clock at %s, tick at %s; firing the deadlines between in steps of %d",
                number,
                format_rfc3339(runtime.core.clock_us or 0),
                format_rfc3339(runtime.catch_up.to_us),
                CATCH_UP_STEP,
            )

    def catching_up(self, number: int) -> bool:
        """True while a tick of partition `number` still has deadlines to fire; the driver
        calls `catch_up` again, letting other work run in between."""
        runtime = self.partitions.get(number)
        return runtime is not None and runtime.catch_up is not None

    def catch_up(self, number: int) -> None:
        """Fire the next step of deadlines on the way to the tick's instant."""
        runtime = self.partitions.get(number)
        if runtime is None or runtime.catch_up is None:
            return  # let go of in the meantime
        target, offset = runtime.catch_up
        fired = runtime.core.advance(target, self.now_us(), max_deadlines=CATCH_UP_STEP)
        if runtime.core.clock_us is not None and runtime.core.clock_us >= target:
            runtime.catch_up = None
        self._publish(runtime, number, self.topics.ticks, offset, fired)

    def _publish(
        self,
        runtime: PartitionRuntime,
        number: int,
        topic: str,
        offset: int,
        changes: list[Change],
        erased: str | None = None,
        *,
        order_offset: int | None = None,
    ) -> None:
        """Write changed customers (with their outboxes), the clock, then send the outputs.

        `order_offset`: the orders message whose processing this completes, if any."""
        encoded = [(change, encode(change)) for change in changes]
        by_customer: dict[str, list[bytes]] = {}
        for change, raw in encoded:
            by_customer.setdefault(change.customer_id, []).append(raw)
        outboxes = {cid: Outbox(topic, offset, raws) for cid, raws in by_customer.items()}
        clock = runtime.core.clock_us
        recorded = runtime.recorded_through
        through = recorded
        if order_offset is not None and (recorded is None or order_offset > recorded):
            through = order_offset
        changed = runtime.customers.write_back(
            outboxes, clock, (topic, offset), lambda outbox: self._undelivered(number, outbox), through
        )
        if through != recorded and through is not None:
            # the customers written carry it; a message that wrote none leaves it on its own
            if not any(change.state is not None for change in changed):
                self._write_clocks(
                    runtime, clocks_key(ClocksEntry.ORDERS_THROUGH, number), str(through).encode()
                )
            runtime.recorded_through = through
        if clock != runtime.persisted_clock and clock is not None:
            # The partition clock rides along with every customer written (take_up restores
            # it as the maximum); only a message that moved it and wrote no customer (a tick,
            # a duplicate, an erasure) writes it on its own.
            if not any(change.state is not None for change in changed):
                self._write_clocks(runtime, clocks_key(ClocksEntry.CLOCK, number), str(clock).encode())
            runtime.persisted_clock = clock
        self._keep_erasures(runtime, number, (topic, offset), changed, erased)
        runtime.counts.count(changes, changed, runtime.core.clock_us)
        for change, raw in encoded:
            key = change.customer_id.encode()
            if isinstance(change, Transition):
                self._send_transition(key, raw, change.transition, fresh=not change.replayed)
            else:
                self._send_segment_change(key, raw, change.segment, fresh=not change.replayed)
        for written in changed:
            value = None
            if written.state is not None:
                value = encode(customer_record(written.state, clock, self.scorer))
            self._emit(self.topics.customer_state, written.customer_id.encode(), value, number)

    def _keep_erasures(
        self,
        runtime: PartitionRuntime,
        number: int,
        written_by: tuple[str, int],
        changed: list[WrittenCustomer],
        erased: str | None,
    ) -> None:
        """Add this message's erasure to the partition's pending ones, drop the committed."""
        if erased is None and not runtime.erasing:
            return
        kept = [p for p in runtime.erasing if self._uncommitted(number, p.written_by)]
        if erased is not None:
            outboxes = next((c.outboxes for c in changed if c.customer_id == erased), [])
            marker = erasure_key(erased)
            kept.append(PendingErasure(erased, marker, runtime.core.erasures[marker], written_by, outboxes))
        if kept == runtime.erasing:
            return
        runtime.erasing = kept
        if kept:
            self._write_clocks(
                runtime, clocks_key(ClocksEntry.ERASING, number), encode_pending_erasures(kept)
            )
        else:
            self._write_clocks(runtime, clocks_key(ClocksEntry.ERASING, number), None)

    def _write_clocks(self, runtime: PartitionRuntime, key: bytes, value: bytes | None) -> None:
        """An entry of the partition-clocks table (None: removed), after the customers written
        before it (see TableCustomers)."""
        runtime.customers.flush()
        if value is None:
            self.clocks.pop(key, None)
        else:
            self.clocks[key] = value

    def flush_store(self) -> None:
        """Write every customer written so far to the local store; see TableCustomers."""
        for runtime in self.partitions.values():
            runtime.customers.flush()

    def _send_segment_change(self, key: bytes, raw: bytes, segment: str | None, *, fresh: bool) -> None:
        self._emit(self.topics.segment_changes, key, raw, None)
        if fresh:
            self._emit(per_segment_topic(self.config, segment), key, raw, None)

    def _send_transition(self, key: bytes, raw: bytes, name: str, *, fresh: bool) -> None:
        self._emit(self.topics.transitions, key, raw, None)
        if fresh:
            self._emit(per_name_topic(self.config, name), key, raw, None)

    def _dead_letter(
        self, topic: str, number: int, offset: int, key: bytes | None, raw: bytes, reason: str, kind: str
    ) -> None:
        record = rejection(
            raw, reason, TopicSource(topic=topic, partition=number, offset=offset), keep_original=True
        )
        self._emit(self.topics.dead_letters, key, encode(record), number)
        self.metrics.dead_letters.labels(kind).inc()

    def _emit(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None) -> None:
        self.pending.append(Output(topic, key, value, partition))

    def _emit_changelog(self, number: int, key: bytes, value: bytes | None) -> None:
        """A record of the customers table's changelog, sent in line with the outputs.

        Customer records go out as outputs, not through faust's table, so that every record
        of a partition's changelog (written, or sent again at take-up) leaves in the order it
        was made, on one path, for the cost of one producer call each."""
        self.pending.append(Output(self.customers_changelog, key, value, number))

    def _changelog_writer(self, number: int) -> Callable[[bytes, bytes | None], None]:
        return lambda key, value: self._emit_changelog(number, key, value)

    def drain(self) -> list[Output]:
        """The messages to produce for what was handled since the last call, in order."""
        out, self.pending = self.pending, []
        return out

    # -- time ---------------------------------------------------------------------------

    def tick_value(self) -> bytes:
        """A tick for now, less the configured delay for events still on their way."""
        return encode(Tick(at=from_us(self.now_us() - self.config.time.tick_delay)))
