"""The live worker's logic, apart from Faust: one message in, table writes and outputs out.

`Worker` holds one `Partition` core per partition this process owns (`ownership`), checks
each orders offset against where processing stands (`offsets`), applies the message, writes
the changed customers with their outboxes and hands the outputs to the driver (`outputs`).
It knows nothing of Faust beyond table mappings and callables, so it is tested directly as
well as through the real broker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry

from ..config import Config
from ..inputs.messages import InvalidEvent, Tick, customer_record, decode_event, decode_tick, encode
from ..kafka.partitioning import partition_for
from ..lifecycle import Outcome, event_type
from ..lifecycle.erasure import erasure_key
from ..lifecycle.instants import format_rfc3339, from_us, to_us
from ..lifecycle.transitions import Change
from ..wallclock import wall_clock_us
from .customer_store import WrittenCustomer
from .metrics import WorkerMetrics
from .outputs import Output, Outputs
from .ownership import CatchUp, Ownership, PartitionRuntime
from .resends import Resends
from .state import (
    CUSTOMERS_TABLE,
    ClocksEntry,
    Outbox,
    PendingErasure,
    changelog_topic,
    clocks_key,
    encode_pending_erasures,
)

log = logging.getLogger(__name__)

__all__ = ["CATCH_UP_STEP", "LATE_SHARE_WINDOW", "Output", "Worker"]

# Deadlines fired per step when a tick finds the clock far behind (after a pause, a whole
# backlog is due at once: 1M customers took 35 s in one go, with the event loop blocked,
# health checks unanswered and every produced message held in memory).
CATCH_UP_STEP = 500
# events per look at a partition's share of late events
LATE_SHARE_WINDOW = 1000


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
        self.topics = config.topics
        self.clocks = clocks_table
        self.now_us = now_us
        self.committed_offset = committed_offset
        self.owned_partitions = owned_partitions
        self.metrics = metrics or WorkerMetrics(CollectorRegistry())
        self.customers_changelog = changelog_topic(config.worker.app_id, CUSTOMERS_TABLE)
        self.scorer = config.scorer()
        self.segment_fingerprint = config.segments.fingerprint()
        self.outputs = Outputs(config, self.customers_changelog, self.metrics)
        self.exactly_once = config.worker.exactly_once
        self.resends = Resends(
            self.outputs,
            committed_offset,
            resend_changelog,
            self.scorer,
            self.metrics,
            hold=self.exactly_once,
        )
        tables = (customers_table, clocks_table, erasures_table)
        self.ownership = Ownership(config, tables, self.outputs, self.resends, self.scorer, self.metrics)

    # -- ownership ----------------------------------------------------------------------

    @property
    def partitions(self) -> dict[int, PartitionRuntime]:
        return self.ownership.partitions

    @property
    def parked(self) -> dict[int, PartitionRuntime]:
        return self.ownership.parked

    def take_up(self, numbers: Iterable[int]) -> None:
        self.ownership.take_up(numbers)

    def let_go(self, numbers: Iterable[int]) -> None:
        self.ownership.let_go(numbers)

    def regain(self, numbers: Iterable[int]) -> None:
        self.ownership.regain(numbers)

    def give_up(self, number: int) -> None:
        """Forget partition `number`: another worker owns it now (exactly-once mode: this
        worker's producer for it was fenced), and what this one did since its last commit
        is undone. Taken up afresh from the table if it comes back."""
        self.ownership.let_go([number])
        self.ownership.parked.pop(number, None)
        self.resends.forget(number)

    # -- offsets --------------------------------------------------------------------------

    def processed_through(self, number: int) -> int | None:
        """The last orders offset of partition `number` processed in this ownership (None:
        none yet, or not owned): what the commit protocol may commit up to."""
        runtime = self.partitions.get(number)
        return None if runtime is None else runtime.offsets.last_processed

    def _committed_order(self, number: int) -> int | None:
        return self.committed_offset(self.topics.orders, number)

    def rewinds(self, numbers: Iterable[int]) -> dict[int, int]:
        """Partitions to read again, and from where, because their committed offset is past
        what their state records as processed (`PartitionOffsets.rewind`)."""
        found = {}
        for number in numbers:
            runtime = self.partitions.get(number)
            if runtime is not None:
                resume = runtime.offsets.rewind(self._committed_order(number))
                if resume is not None:
                    found[number] = resume
        return found

    def fetched_past(self, numbers: Iterable[int], position: Callable[[int], int | None]) -> dict[int, int]:
        """Partitions whose consumer stays fetched past the first offset not processed, and
        where to read each again from (`PartitionOffsets.fetched`)."""
        found = {}
        for number in numbers:
            runtime = self.partitions.get(number)
            if runtime is not None:
                expected = runtime.offsets.fetched(position(number), self._committed_order(number))
                if expected is not None:
                    found[number] = expected
        return found

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
        if topic == self.topics.orders:
            last = runtime.offsets.last_processed
            if self.exactly_once and last is not None and offset <= last:
                # read again after a seek: its outputs are in a transaction already, and a
                # second dead letter for it would be a duplicate
                return None
            reread_from = runtime.offsets.arrived(offset, self._committed_order(number))
            if reread_from is not None:
                return reread_from
        self.resends.release(number, topic, offset)
        if runtime.reevaluate is not None:
            self._reevaluate_segments(runtime, number, topic, offset)
        raw = value or b""
        if topic == self.topics.ticks:
            self._on_tick(runtime, number, offset, raw)
            return None
        self._on_order(runtime, number, topic, offset, key, raw)
        return None

    def _on_order(
        self, runtime: PartitionRuntime, number: int, topic: str, offset: int, key: bytes | None, raw: bytes
    ) -> None:
        try:
            event = decode_event(raw)
        except InvalidEvent as invalid:
            self.outputs.dead_letter(topic, number, offset, key, raw, str(invalid), invalid.kind)
            self._publish(runtime, number, topic, offset, [], order_offset=offset)
            return
        owner = partition_for(event.customer_id, self.config.kafka.partitions)
        if owner != number:
            # Keyed otherwise by its producer: a customer's state lives in one partition only,
            # so the event goes to that partition of the orders topic, keyed by customer.
            self.outputs.emit(self.topics.orders, event.customer_id.encode(), raw, owner, number)
            self.metrics.rerouted.inc()
            self._publish(runtime, number, topic, offset, [], order_offset=offset)
            return
        now = self.now_us()
        result = runtime.core.apply(event, now)
        self.metrics.labelled(self.metrics.events, event_type(event), result.outcome.value).inc()
        self._watch_late_share(runtime, number, result.outcome is Outcome.LATE)
        if result.outcome is Outcome.REJECTED:
            kind = result.reason_code or "rejected"
            self.outputs.dead_letter(topic, number, offset, key, raw, result.reason or "rejected", kind)
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
        offsets = runtime.offsets
        recorded = offsets.recorded_through
        through = recorded
        if order_offset is not None and (recorded is None or order_offset > recorded):
            through = order_offset
        changed = runtime.customers.write_back(
            outboxes, clock, (topic, offset), lambda outbox: self.resends.undelivered(number, outbox), through
        )
        if through != recorded and through is not None:
            # the customers written carry it; a message that wrote none leaves it on its own
            if not any(change.state is not None for change in changed):
                self._write_clocks(
                    runtime, clocks_key(ClocksEntry.ORDERS_THROUGH, number), str(through).encode()
                )
            offsets.recorded_through = through
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
            self.outputs.change(change, raw, number)
        for written in changed:
            value = None
            if written.state is not None:
                value = encode(customer_record(written.state, clock, self.scorer))
            self.outputs.customer_state(number, written.customer_id.encode(), value)

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
        kept = [p for p in runtime.erasing if self.resends.uncommitted(number, p.written_by)]
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

    def drain(self) -> list[Output]:
        """The messages to produce for what was handled since the last call, in order."""
        return self.outputs.drain()

    # -- time ---------------------------------------------------------------------------

    def tick_value(self) -> bytes:
        """A tick for now, less the configured delay for events still on their way."""
        return encode(Tick(at=from_us(self.now_us() - self.config.time.tick_delay)))
