"""One partition's clock, its deadline index, and the two operations on it.

`apply` applies an order event; `advance` moves the partition clock forward, firing every
deadline on the way in time order. Both return transitions and never send them: the driver
(live worker, offline replay, tests) decides where they go.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, cast

from .customer import (
    ERASED_SNAPSHOT,
    CustomerState,
    OrderRecord,
    RejectedEvent,
    Scorer,
    new_customer,
    record_event,
    snapshot,
)
from .engagement import note_engaged, note_signed_up
from .erasure import back_after_erasure, erasure_key
from .events import CustomerEngaged, CustomerErased, CustomerSignedUp, OrderEvent, OrderPlaced, event_type
from .experiments import Experiments, OnGoal
from .folding import DEFAULT_ORDERS_KEPT, DEFAULT_REFUNDS_KEPT, fold_oldest, folded_reason, refunds_reason
from .instants import DAY_US, MINUTE_US, from_us, to_us
from .policy import PolicyBook, State, next_deadline, state_at
from .results import EventResult, Outcome, future_reason
from .segment_changes import Move, Stamp, change_events, move_to
from .segment_windows import matched_keys, note_event, rebuild_windows
from .segments import SegmentRules, evaluate
from .transitions import (
    TRANSITION_CAUSES,
    Cause,
    Change,
    CustomerSnapshot,
    SegmentCause,
    Transition,
    transition_name,
)
from .triggers import (
    Occurrence,
    TriggerRules,
    arm,
    disarm,
    due,
    event_occurrence,
    fired_event,
    forget_removed,
    include_next_firing,
    may_fire,
)


class Scheduled(Protocol):
    """What the deadline index needs of a stored customer."""

    @property
    def customer_id(self) -> str: ...

    @property
    def deadline(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class TimeRules:
    """How time is judged: when a transition is stale, and how far ahead an event may be."""

    stale_after: int = DAY_US
    max_future_skew: int = 5 * MINUTE_US


class Partition:
    """The lifecycle of every customer of one partition, under one partition clock."""

    def __init__(
        self,
        customers: MutableMapping[str, CustomerState],
        policies: PolicyBook | None = None,
        time_rules: TimeRules | None = None,
        *,
        clock_us: int | None = None,
        rebuilding: bool = False,
        erasures: MutableMapping[str, int] | None = None,
        segments: SegmentRules | None = None,
        keep_contact: bool = True,
        scorer: Scorer | None = None,
        orders_kept: int = DEFAULT_ORDERS_KEPT,
        refunds_kept: int = DEFAULT_REFUNDS_KEPT,
        experiments: Experiments | None = None,
        on_goal: OnGoal | None = None,
        triggers: TriggerRules | None = None,
    ) -> None:
        self.customers = customers
        self.triggers = triggers or TriggerRules()
        self.experiments = experiments or Experiments()
        self.on_goal = on_goal  # told of each experiment goal reached (the live metric)
        self.orders_kept = orders_kept
        self.refunds_kept = refunds_kept
        self.scorer = scorer  # the customer-base model's scores in snapshots, when configured
        # False: email and consent never enter state, so no output carries them
        self.keep_contact = keep_contact
        self.segments = segments or SegmentRules()
        # erasure key -> partition clock at the erasure; see `erasure_key`
        self.erasures: MutableMapping[str, int] = {} if erasures is None else erasures
        self.policies = policies or PolicyBook()
        self.time_rules = time_rules or TimeRules()
        self.clock_us = clock_us
        # A rebuild marks every transition replayed, so history never mails anyone twice.
        self.rebuilding = rebuilding
        self._heap: list[tuple[int, str]] = []
        self._deadlines: dict[str, int] = {}
        self._now: tuple[int, datetime] = (0, from_us(0))

    # -- the deadline index -------------------------------------------------------------

    def rebuild_deadline_index(self, customers: Iterable[Scheduled] | None = None) -> None:
        """Rebuild the index from stored states, e.g. when a partition is assigned."""
        source = self.customers.values() if customers is None else customers
        self._deadlines = {c.customer_id: c.deadline for c in source if c.deadline is not None}
        self._heap = [(d, cid) for cid, d in self._deadlines.items()]
        heapq.heapify(self._heap)

    def next_deadline(self) -> int | None:
        """The earliest pending deadline of the partition, if any."""
        while self._heap:
            due, customer_id = self._heap[0]
            if self._deadlines.get(customer_id) == due:
                return due
            heapq.heappop(self._heap)
        return None

    def _index(self, customer: CustomerState) -> None:
        """Put the customer's next deadline (set by `_settle`) in the index."""
        due = customer.deadline
        cid = customer.customer_id
        if due is None:
            self._deadlines.pop(cid, None)
            return
        if self._deadlines.get(cid) != due:
            self._deadlines[cid] = due
            heapq.heappush(self._heap, (due, cid))
            if len(self._heap) > 4 * len(self._deadlines) + 1024:
                self._compact_heap()

    def _compact_heap(self) -> None:
        self._heap = [(d, cid) for cid, d in self._deadlines.items()]
        heapq.heapify(self._heap)

    # -- time ---------------------------------------------------------------------------

    def advance(self, to_us: int, now_us: int, max_deadlines: int | None = None) -> list[Change]:
        """Move the partition clock to `to_us`, firing every deadline at or before it.

        The clock never goes back: an earlier `to_us` changes nothing. With `max_deadlines`,
        it stops after that many deadlines (and any others at the same instant), the clock at
        the last one, so that a long way can be gone in steps; `to_us` is reached when
        `clock_us` equals it.
        """
        if self.clock_us is not None and to_us <= self.clock_us:
            return []
        fired: list[Change] = []
        heap, deadlines = self._heap, self._deadlines
        settled = 0
        while heap and heap[0][0] <= to_us:
            if max_deadlines is not None and settled >= max_deadlines and heap[0][0] != self.clock_us:
                return fired
            due, customer_id = heapq.heappop(heap)
            if deadlines.get(customer_id) != due:
                continue
            del deadlines[customer_id]
            customer = self.customers.get(customer_id)
            if customer is None:
                continue
            self.clock_us = due
            settled += 1
            changes = self._settle(customer, due, now_us, "deadline", None)
            fired += changes
            if self.triggers or customer.triggers is not None:
                fired += self._fire_triggers(customer, due, now_us, changes, None, None)
            self._index(customer)
            self.customers[customer_id] = customer
        self.clock_us = to_us
        return fired

    # -- events -------------------------------------------------------------------------

    def apply(self, event: OrderEvent, now_us: int) -> EventResult:
        """Apply one order event; deadlines up to its `occurred_at` fire first.

        A late event (older than the partition clock) is applied too, and the customer is
        settled at the partition clock, so per customer `occurred_at` never decreases.
        """
        at = to_us(event.occurred_at)
        if at - now_us > self.time_rules.max_future_skew:
            return EventResult(Outcome.REJECTED, reason=future_reason(at, now_us), reason_code="future_skew")
        clock = self.clock_us
        fired = self.advance(at, now_us) if clock is None or at > clock else []
        clock = self.clock_us
        assert clock is not None
        customer = self.customers.get(event.customer_id)
        if isinstance(event, CustomerErased):
            return self._erase(customer, event, fired, now_us)
        if (customer is None or at < customer.created_at) and self._before_erasure(event.customer_id, at):
            return EventResult(Outcome.ERASED, fired)
        is_new = customer is None
        if customer is None:
            customer = new_customer(event.customer_id, at)
        else:
            folded_away = folded_reason(customer, event, at, self.orders_kept)
            if folded_away is not None:
                return EventResult(Outcome.REJECTED, fired, reason=folded_away, reason_code="folded")
            too_many = refunds_reason(customer, event, self.refunds_kept)
            if too_many is not None:
                return EventResult(Outcome.REJECTED, fired, reason=too_many, reason_code="too_many_refunds")
        if isinstance(event, CustomerSignedUp | CustomerEngaged):
            return self._before_orders(customer, event, at, fired, now_us, is_new)
        new_order = isinstance(event, OrderPlaced) and event.order_id not in customer.orders
        # an order goal of an experiment, and a trigger's "order", is a placement that makes
        # an order count
        uncounted = (
            self._uncounted_placement(customer, event) if customer.exposures or self.triggers else None
        )
        try:
            changed = record_event(customer, event, at, self.keep_contact)
        except RejectedEvent as rejected:
            return EventResult(Outcome.REJECTED, fired, reason=str(rejected), reason_code="inconsistent")
        if not changed:
            return EventResult(Outcome.DUPLICATE, fired)
        if self.segments:
            note_event(self.segments, customer, event, new_order, clock)
        placed_at = customer.orders[uncounted].counted_at() if uncounted is not None else None
        if placed_at is not None and customer.exposures:
            self.experiments.ordered(customer, placed_at, self.on_goal)
        # a trigger's "order": an order_id not seen before, counted once recorded
        counted_new = new_order and placed_at is not None
        occurrence = event_occurrence(event, at, counted_new) if self.triggers else None
        folded = fold_oldest(customer, self.orders_kept, self._matched) if new_order else 0
        # On time, the transition's instant is the event's own; reusing its datetime when it
        # is already UTC saves a conversion on the hottest path.
        on_time = at == clock
        instant = event.occurred_at if on_time and event.occurred_at.tzinfo is UTC else None
        changes = self._settle(customer, clock, now_us, event_type(event), event.event_id, instant)
        fired += changes
        if self.triggers or customer.triggers is not None:
            fired += self._fire_triggers(customer, clock, now_us, changes, occurrence, occurrence)
        self._index(customer)
        self.customers[event.customer_id] = customer
        return EventResult(Outcome.APPLIED if on_time else Outcome.LATE, fired, folded=folded)

    def _before_orders(
        self,
        customer: CustomerState,
        event: CustomerSignedUp | CustomerEngaged,
        at: int,
        fired: list[Change],
        now_us: int,
        is_new: bool,
    ) -> EventResult:
        """A sign-up or an engagement: noted as far as segments and triggers read it; then
        the customer is settled (segments on engagement may move) and the triggers run."""
        clock = self.clock_us
        assert clock is not None
        if isinstance(event, CustomerSignedUp):
            changed = note_signed_up(customer, event, at, self.keep_contact)
        else:
            changed = note_engaged(self.segments.engaged_keys, customer, event, at)
        occurrence = event_occurrence(event, at, False)
        if self.triggers and occurrence is not None:
            # armed and disarmed below, after the settling; only whether it would change
            # anything is needed here
            changed = (
                changed
                or occurrence.name in self.triggers.by_on
                or occurrence.name in self.triggers.by_unless
            )
        outcome = Outcome.APPLIED if at == clock else Outcome.LATE
        if not changed and not is_new:
            # nothing configured reads it: nothing to write. Applied all the same: they are
            # not deduplicated by event_id (that would keep every id), so "duplicate" would
            # say what is not known
            return EventResult(outcome, fired)
        changes = self._settle(customer, clock, now_us, event_type(event), event.event_id)
        fired += changes
        if self.triggers or customer.triggers is not None:
            fired += self._fire_triggers(customer, clock, now_us, changes, occurrence, occurrence)
        self._index(customer)
        self.customers[event.customer_id] = customer
        return EventResult(outcome, fired)

    def _fire_triggers(
        self,
        customer: CustomerState,
        at_us: int,
        now_us: int,
        changes: list[Change],
        on: Occurrence | None,
        unless: Occurrence | None,
    ) -> list[Change]:
        """The triggers at `at_us` (docs/triggers.md): the firings due, after the changes
        made at this instant, in configuration order; the customer's deadline then includes
        their next pending firing."""
        rules = self.triggers
        forget_removed(rules, customer)
        if unless is not None:
            disarm(rules, customer, unless)
        due_before = due(rules, customer, at_us)
        for change in changes:
            name = change.exposure_name()
            if name in rules.by_on:
                cause = change.cause_event_id
                arm(rules, customer, Occurrence(name, at_us, change.event_id, source_event_id=cause))
        if on is not None:
            arm(rules, customer, on)
        firing = sorted([*due_before, *due(rules, customer, at_us)], key=lambda d: rules.rank[d[0].name])
        firings: list[Change] = []
        if firing:
            stamp = self._stamp(at_us, now_us, "deadline", None)
            snap = snapshot(customer, at_us, self.scorer)
            for trigger, armed in firing:
                if may_fire(trigger, customer):
                    firings.append(fired_event(trigger, customer, armed, stamp, snap))
            firings = self.experiments.exposed(customer, firings, at_us, self.on_goal)
        include_next_firing(customer)
        return firings

    @staticmethod
    def _uncounted_placement(customer: CustomerState, event: OrderEvent) -> str | None:
        """The order id of a placement of an order that does not count yet (new, or known
        only from its cancellation or refunds)."""
        if not isinstance(event, OrderPlaced):
            return None
        known = customer.orders.get(event.order_id)
        return event.order_id if known is None or known.counted_at() is None else None

    def _matched(self, order: OrderRecord) -> set[str]:
        return matched_keys(self.segments, order)

    def _erase(
        self,
        customer: CustomerState | None,
        event: CustomerErased,
        fired: list[Change],
        now_us: int,
    ) -> EventResult:
        assert self.clock_us is not None
        marker = erasure_key(event.customer_id)
        erased_at = self.erasures.get(marker)
        # An erasure its marker already covers is a redelivery. It must not move the marker
        # to a later clock (that would end a later life of the customer), nor erase the
        # customer back since as a new one; it erases a customer of the erased life, put
        # back by a store restored from before the erasure.
        if erased_at is not None and to_us(event.occurred_at) <= erased_at:
            if customer is None or back_after_erasure(customer, erased_at):
                return EventResult(Outcome.DUPLICATE, fired)
        else:
            self.erasures[marker] = self.clock_us
        if customer is None:
            return EventResult(Outcome.APPLIED, fired, erased=True)
        fired += self._erasure_changes(customer, event.event_id, now_us)
        del self.customers[customer.customer_id]
        self._deadlines.pop(customer.customer_id, None)
        return EventResult(Outcome.APPLIED, fired, erased=True)

    def _erasure_changes(self, customer: CustomerState, event_id: str, now_us: int) -> list[Change]:
        """Back to prospect, out of every segment and class, all at the partition clock,
        with nothing about the person in the snapshot."""
        assert self.clock_us is not None
        stamp = self._stamp(self.clock_us, now_us, "customer.erased", event_id)
        changes: list[Change] = []
        if customer.state is not State.PROSPECT:
            changes.append(self._transition(customer, State.PROSPECT, stamp, ERASED_SNAPSHOT))
        moves = move_to(self.segments, customer, [], None)
        changes += change_events(self.segments, customer, moves, stamp, ERASED_SNAPSHOT)
        return self.experiments.exposed(customer, changes, self.clock_us, self.on_goal)

    def _before_erasure(self, customer_id: str, at_us: int) -> bool:
        """True for an event of a customer's life that an erasure ended.

        Kafka redelivers after a crash or a rebalance; without this, an order redelivered
        after its customer's erasure would bring the customer back.
        """
        erased_at = self.erasures.get(erasure_key(customer_id))
        return erased_at is not None and at_us <= erased_at

    # -- transitions and segment changes ---------------------------------------------

    def _settle(
        self,
        customer: CustomerState,
        at_us: int,
        now_us: int,
        cause: SegmentCause,
        cause_event_id: str | None,
        instant: datetime | None = None,
    ) -> list[Change]:
        """Move the customer to the state the table gives at `at_us`, and to the segments
        and class they are in then; set their next deadline. Returns the changes, in the
        order of docs/segments.md: the transition, segments in configuration order, the class."""
        policy = self.policies.for_store(customer.store_id)
        count, first, last = customer.order_count, customer.first_order_at or 0, customer.last_order_at or 0
        target = state_at(policy, count, first, last, at_us)
        previous = customer.state
        if target is not previous:
            customer.state = target  # the snapshot below and segment `state` conditions see it
        lifecycle_deadline = next_deadline(policy, count, first, last, at_us)
        moves = self._move_segments(customer, at_us, lifecycle_deadline, time_only=cause == "deadline")
        if target is previous and not moves:
            return []
        snap = snapshot(customer, at_us, self.scorer)
        stamp = self._stamp(at_us, now_us, cause, cause_event_id, instant)
        changes: list[Change] = []
        if target is not previous:
            customer.state = previous
            changes.append(self._transition(customer, target, stamp, snap))
        changes += change_events(self.segments, customer, moves, stamp, snap)
        return self.experiments.exposed(customer, changes, at_us, self.on_goal)

    def _move_segments(
        self, customer: CustomerState, at_us: int, lifecycle_deadline: int | None, time_only: bool = False
    ) -> list[Move]:
        """Segments and class at `at_us` (lifecycle state already settled), and the customer's
        next deadline: the lifecycle's or the segments', whichever comes first.

        When only time moved (a deadline) before the instant segments may next change, and
        no segment reads the lifecycle state, membership is as it was: not evaluated again."""
        moves: list[Move] = []
        if self.segments:
            unchanged = time_only and at_us < customer.segments_until and not self.segments.reads_state
            if not unchanged:
                membership = evaluate(self.segments, customer, at_us, lifecycle_deadline)
                moves = move_to(self.segments, customer, membership.segments, membership.klass)
                customer.segments_until = _NEVER if membership.next_change is None else membership.next_change
        deadline = lifecycle_deadline
        until = customer.segments_until
        if self.segments and until != _NEVER and (deadline is None or until < deadline):
            deadline = until
        customer.deadline = deadline
        return moves

    def _stamp(
        self,
        at_us: int,
        now_us: int,
        cause: SegmentCause,
        cause_event_id: str | None,
        instant: datetime | None = None,
    ) -> Stamp:
        replayed = self.rebuilding or now_us - at_us > self.time_rules.stale_after
        return Stamp(
            at_us, instant or from_us(at_us), self._detected_at(now_us), replayed, cause, cause_event_id
        )

    def _transition(
        self, customer: CustomerState, target: State, stamp: Stamp, snap: CustomerSnapshot
    ) -> Transition:
        """The customer's next transition, to `target`; advances their state and `seq`."""
        previous = customer.state
        customer.seq += 1
        customer.state = target
        customer.state_since = stamp.at_us
        cause = stamp.cause
        assert cause != "configuration", "configuration changes move segments only"
        cause_event_id = stamp.cause_event_id
        if cause not in TRANSITION_CAUSES:
            # a sign-up or an engagement moves no state; a state it finds out of date (the
            # policy's windows changed since the customer was settled) moves by time
            cause, cause_event_id = "deadline", None
        return Transition(
            event_id=f"{customer.id_prefix}{customer.seq:08x}",
            customer_id=customer.customer_id,
            seq=customer.seq,
            transition=transition_name(previous, target),
            from_state=previous,
            to_state=target,
            occurred_at=stamp.occurred_at,
            detected_at=stamp.detected_at,
            replayed=stamp.replayed,
            cause=cast(Cause, cause),
            cause_event_id=cause_event_id,
            customer=snap,
        )

    def reevaluate_segments(self, customer: CustomerState, now_us: int) -> list[Change]:
        """Segments and class under the rules this partition runs with, for a customer last
        evaluated under others (a segment added, removed or redefined): each difference is a
        change at the partition clock, marked replayed, so a new segment mails no one."""
        assert self.clock_us is not None
        at = self.clock_us
        policy = self.policies.for_store(customer.store_id)
        count, first, last = customer.order_count, customer.first_order_at or 0, customer.last_order_at or 0
        rebuild_windows(self.segments, customer, at)
        moves = self._move_segments(customer, at, next_deadline(policy, count, first, last, at))
        forget_removed(self.triggers, customer)
        include_next_firing(customer)
        self._index(customer)
        changes: list[Change] = []
        if moves:
            stamp = Stamp(at, from_us(at), self._detected_at(now_us), True, "configuration", None)
            made = change_events(self.segments, customer, moves, stamp, snapshot(customer, at, self.scorer))
            changes = self.experiments.exposed(customer, list(made), at, self.on_goal)
        self.customers[customer.customer_id] = customer
        return changes

    def _detected_at(self, now_us: int) -> datetime:
        if self._now[0] != now_us:
            self._now = (now_us, from_us(now_us))
        return self._now[1]


_NEVER = 1 << 62  # CustomerState.segments_until: time alone changes no segment
