"""Where processing of one orders partition stands, in this ownership: the worker's own
offset bookkeeping, apart from faust's.

faust's committed offset says what was committed, not what was processed: it committed
offsets nobody processed, and it can drop a message on its way to the stream around a
rebalance (docs/field-notes.md). The partition's state records which orders message was
processed last (`recorded_through`); the worker then checks each orders offset that arrives
against the one it expects, and reads the partition again from a hole.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

from .metrics import WorkerMetrics

log = logging.getLogger(__name__)

# looks in a row (one a tick interval) at a consumer fetched past what was processed before
# the partition is read again; see `PartitionOffsets.fetched`
FETCHED_PAST_LOOKS = 3


class Reread(NamedTuple):
    """An orders partition being read again from `expected` (see `PartitionOffsets.arrived`)."""

    expected: int  # the first offset not processed in this ownership
    lowest_past: int  # the lowest offset that arrived past it


class FetchedPast(NamedTuple):
    """A partition's fetch position seen past its first unprocessed offset, and how many
    looks in a row found both where they were."""

    position: int
    first_unprocessed: int
    looks: int


@dataclass
class PartitionOffsets:
    number: int
    metrics: WorkerMetrics
    # The last orders offset whose processing the partition's state records: every customer
    # record carries it (`orders_through`), and an orders message that writes no customer
    # leaves it in the clocks table.
    recorded_through: int | None = None
    # the last orders offset processed in this ownership: what the commit protocol may commit
    # up to
    last_processed: int | None = None
    reread: Reread | None = None
    # set once the partition was sent back to recorded_through + 1 (see `rewind`)
    rewound: bool = False
    fetched_past: FetchedPast | None = None

    def first_unprocessed(self, committed: int | None) -> int | None:
        """The first orders offset not yet processed, None if unknown.

        Before the first message of this ownership the state says which came last; the
        committed offset only says what faust committed, so it is the last resort.
        """
        if self.last_processed is not None:
            return self.last_processed + 1
        if self.recorded_through is not None:
            return self.recorded_through + 1
        return committed

    def arrived(self, offset: int, committed: int | None) -> int | None:
        """An orders message at `offset` arrived: None when it is the one expected (it is then
        counted as processed), else the offset to read the partition again from.

        A message past offsets not yet processed in this ownership is left unprocessed and
        the partition read again from the first offset missing. Offsets with no message (a
        transactional producer's markers) show as the same first offset arriving again after
        the re-read: that gap is real, and counted as skipped.
        """
        number = self.number
        first_unprocessed = self.first_unprocessed(committed)
        previous = None if first_unprocessed is None else first_unprocessed - 1
        if previous is None or offset <= previous + 1:
            self.reread = None
            self.last_processed = offset
            return None
        reread = self.reread
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
            self.reread = None
            self.last_processed = offset
            return None
        if reread is None or reread.expected != previous + 1:
            log.warning(
                "orders partition %d: offset %d arrived before %d; reading the partition again from %d",
                number,
                offset,
                previous + 1,
                previous + 1,
            )
            self.metrics.rereads.labels(str(number)).inc()
            self.reread = Reread(previous + 1, offset)
        elif offset < reread.lowest_past:
            self.reread = Reread(previous + 1, offset)
        return previous + 1

    def rewind(self, committed: int | None) -> int | None:
        """Where to read the partition again from when its committed offset is past the
        message after the last one the state records as processed, with nothing processed
        since it was taken up (a message arriving is checked as it comes: `arrived`); its
        orders would otherwise never be processed. Once per ownership."""
        if self.rewound or self.last_processed is not None or self.recorded_through is None:
            return None
        resume = self.recorded_through + 1
        if committed is None or committed <= resume:
            return None
        log.warning(
            "orders partition %d: committed offset %d is past the last message the state records "
            "as processed (%d); reading the partition again from %d",
            self.number,
            committed,
            self.recorded_through,
            resume,
        )
        self.metrics.rereads.labels(str(self.number)).inc()
        self.rewound = True
        return resume

    def fetched(self, position: int | None, committed: int | None) -> int | None:
        """Where to read the partition again from when the consumer has fetched past the
        first offset not processed and stays there with nothing processed.

        faust drops what the consumer fetches for a partition it holds paused, as it does
        while restoring tables after a rebalance; its seek to the committed offset can come
        before such a fetch, and a partition with nothing more to read then never shows the
        hole (a fail-over benchmark stalled so with one order on each partition taken over).
        Reported once `FETCHED_PAST_LOOKS` looks in a row find the position and the first
        unprocessed offset where they were, so messages on their way to the stream are not
        taken for lost (a seek back would only deliver them twice, which the worker takes in
        its stride).
        """
        expected = self.first_unprocessed(committed)
        if expected is None or position is None or position <= expected:
            self.fetched_past = None
            return None
        seen = self.fetched_past
        same = seen is not None and (seen.position, seen.first_unprocessed) == (position, expected)
        looks = seen.looks + 1 if same and seen is not None else 1
        self.fetched_past = FetchedPast(position, expected, looks)
        if looks < FETCHED_PAST_LOOKS:
            return None
        log.warning(
            "orders partition %d: fetched up to %d, nothing processed from %d; reading the "
            "partition again from %d",
            self.number,
            position,
            expected,
            expected,
        )
        self.metrics.rereads.labels(str(self.number)).inc()
        self.fetched_past = None
        return expected

    def regained(self) -> None:
        """Kept through a rebalance: what was learnt of the previous assignment's reads goes."""
        self.reread = None
        self.rewound = False
