"""Only messages the worker processed, in the ownership they were processed in, count as acked.

faust commits a partition's offsets from the messages its streams acked. Two of those acks
are not "processed" at all, and faust keeps them past the end of the ownership they belong
to (faust-streaming 0.15.3, `Consumer.ack` and `Stream.__aiter__`):

- while a rebalance or a shutdown stops the flow, and after a rebalance for messages fetched
  before it, a stream skips the message it holds and acks it without processing it;
- a revocation clears a partition's acked offsets first, and only then stops the flow and
  waits for the streams, so an ack that comes after (a skipped message, or the message being
  processed) starts the partition's bookkeeping afresh, and it stays there.

When the partition comes back to this worker, the stale offsets fill a hole in its acked
offsets: the commit moves past a message never processed, and when faust seeks to the
committed offset (it does so after resuming the flow), the fetched copy of that message is
dropped as already read. One order was lost that way in a test where a second worker joined
and left (docs/field-notes.md). At a shutdown, the skipped message's offset was committed.

Such an ack is dropped here: the message is no longer waited for, and its offset is left
uncommitted, so whoever owns the partition next processes it (again, if it was processed:
the worker takes duplicates in its stride).

And faust commits the end of the first run of acked offsets without checking that the run
starts where the partition's committed offset is when that offset is unknown (a partition
never committed, or in the moments after an assignment before the seek) or 0: a worker that
had processed one message near the end of a partition without a commit committed past
every message before it (955 lost in the churn test). Here a commit waits until the acked
offsets start at the committed offset, and a partition never committed is sought to its
beginning, its start. (Taking the consumer's position as that start, as this module first
did, was wrong: messages fetched while the streams were paused for a restore were dropped,
and the position was past them; a new owner started there, with orders never processed.)

Last, faust's gaps are folded into the acked offsets here, each offset once, before faust
folds them itself: faust appends a gap's offsets whether acked or not, and an offset held
twice cut its commits to one offset each (`_merge_gaps`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from faust.types import TP, Message
from mode.utils.futures import notify

log = logging.getLogger(__name__)


class Refusals:
    """The messages a worker handed back unprocessed, until faust acks them: their acks count
    for nothing. One per app (`install` makes it)."""

    def __init__(self) -> None:
        self._held: set[tuple[TP, int]] = set()

    def refuse(self, message: Message) -> None:
        """Make the coming ack of `message` count for nothing: the worker did not process it."""
        self._held.add((message.tp, message.offset))

    def taken_back(self, message: Message) -> bool:
        """True (once) when `message` was refused."""
        key = (message.tp, message.offset)
        if key not in self._held:
            return False
        self._held.discard(key)
        return True


def install(
    app: Any, orders_topic: str | None = None, processed_through: Callable[[int], int | None] = lambda n: None
) -> Refusals:
    """Make `app.consumer` disregard acks of messages skipped or outlived by a rebalance, and
    commit no offset of `orders_topic` past the message after the last one processed; returns
    where the worker refuses the messages it hands back unprocessed.

    `processed_through(partition)`: the last orders offset processed in this ownership, None
    before the first."""
    consumer = app.consumer
    record_ack = consumer.ack
    refusals = Refusals()

    def ack(message: Message) -> bool:
        refused = refusals.taken_back(message)
        if (
            not refused
            and app.flow_control.is_active()
            and message.generation_id == app.consumer_generation_id
        ):
            return bool(record_ack(message))
        message.acked = True
        consumer._unacked_messages.discard(message)
        notify(consumer._waiting_for_ack)  # a revocation or shutdown may be waiting for it
        return False

    consumer.ack = ack

    next_offset = consumer._new_offset

    def new_offset(tp: TP) -> int | None:
        if tp.topic == orders_topic:
            last = processed_through(tp.partition)
            first_unprocessed = consumer._committed_offset.get(tp) if last is None else last + 1
            if first_unprocessed is not None:
                _chop_gaps(consumer, tp, first_unprocessed)
        acked = consumer._acked.get(tp)
        if acked:
            first = min(acked)
            gaps = consumer._gap.get(tp)
            if gaps:  # offsets faust saw skipped over (transaction markers): as good as acked
                first = min(first, min(interval.begin for interval in gaps))
            committed = consumer._committed_offset.get(tp)
            if committed is None or first > committed:
                return None  # a hole before the first acked offset, or no known start
            _merge_gaps(consumer, tp, acked)
        offset: int | None = next_offset(tp)
        return offset

    consumer._new_offset = new_offset

    commit_offsets = consumer._commit_offsets

    async def commit_processed_only(offsets: Any, start_new_transaction: bool = True) -> bool:
        if orders_topic is not None:
            offsets = _processed_only(consumer, offsets, orders_topic, processed_through)
        return bool(await commit_offsets(offsets, start_new_transaction=start_new_transaction))

    consumer._commit_offsets = commit_processed_only

    seek_to_committed = consumer.perform_seek

    async def perform_seek() -> None:
        await seek_to_committed()
        never_committed = [
            tp
            for tp in consumer.assignment()
            if app.topics.acks_enabled_for(tp.topic) and consumer._committed_offset.get(tp) is None
        ]
        if never_committed:
            # aiokafka leaves such a partition where its fetcher got to, and faust may have
            # dropped what it fetched while the streams were paused: start at the beginning
            starts = dict(await consumer.earliest_offsets(*never_committed))
            await consumer.seek_wait(starts)
            consumer._committed_offset.update(starts)

    consumer.perform_seek = perform_seek
    return refusals


def _processed_only(
    consumer: Any, offsets: dict[TP, int], orders_topic: str, processed_through: Callable[[int], int | None]
) -> dict[TP, int]:
    """The offsets to commit, none of the orders topic past the message after the last one
    this worker processed: the last line of defence, whatever faust's bookkeeping says."""
    allowed: dict[TP, int] = {}
    for tp, offset in offsets.items():
        if tp.topic != orders_topic:
            allowed[tp] = offset
            continue
        last = processed_through(tp.partition)
        limit = None if last is None else last + 1
        if limit is not None and offset <= limit:
            allowed[tp] = offset
            continue
        acked = consumer._acked.get(tp) or []
        log.warning(
            "%s[%d]: faust would commit %d, past the last offset processed here (%s); committing %s "
            "(committed %s, read offset %s, acked %d from %s to %s, gaps %s)",
            tp.topic,
            tp.partition,
            offset,
            last,
            limit,
            consumer._committed_offset.get(tp),
            consumer._read_offset.get(tp),
            len(acked),
            min(acked, default=None),
            max(acked, default=None),
            sorted((i.begin, i.end) for i in consumer._gap.get(tp, ())),
        )
        committed = consumer._committed_offset.get(tp)
        if limit is not None and (committed is None or limit > committed):
            allowed[tp] = limit
    return allowed


def _chop_gaps(consumer: Any, tp: TP, first_unprocessed: int) -> None:
    """Keep faust's gaps of an orders partition from reaching past the last message processed.

    faust fills a gap in a partition's offsets (`_gap`, meant for transaction markers) with
    every offset between the last offset it read and the one it reads next, and commits them
    as if acked, whole intervals at once. Its read offset is reset to the committed offset by
    a seek while fetched messages are still being handed over, so the next message read can
    open a gap over offsets this worker never processed: in the churn test a worker that ran
    180 ms committed the end of a partition, hundreds of orders it never saw (their
    transitions and changelog records missing). A real gap is a jump the worker sees in the
    offsets it processes, so the offset after the last one it processed bounds every gap.
    """
    gap = consumer._gap.get(tp)
    if not gap:
        return
    beyond = sorted((i.begin, i.end) for i in gap.overlap(first_unprocessed, _NO_END))
    if not beyond:
        return
    log.warning(
        "%s[%d]: faust marked offsets %s as a gap at or past %d, the first offset not processed "
        "(read offset %s, committed %s); they are not committed",
        tp.topic,
        tp.partition,
        ", ".join(f"{b}..{e - 1}" for b, e in beyond),
        first_unprocessed,
        consumer._read_offset.get(tp),
        consumer._committed_offset.get(tp),
    )
    gap.chop(first_unprocessed, _NO_END)


def _merge_gaps(consumer: Any, tp: TP, acked: list[int]) -> None:
    """Fold faust's gaps below the highest acked offset of `tp` into its acked offsets, each
    offset once.

    faust does the same before it commits (`Consumer._new_offset`), but it appends every
    offset of a gap, acked or not, and its run of consecutive offsets ends where an offset
    comes twice. A gap overlaps acks when faust recorded it as its read offset jumped to a
    message fetched before a rebalance, and the worker then read the partition again from
    before the jump (its re-read after a hole): each commit then moved the offset by one,
    every 2.8 s (a scale benchmark's worker, 148 offsets in 7 minutes, 28,000 behind the end
    of two partitions it had processed).
    """
    gaps = consumer._gap.get(tp)
    if not gaps:
        return
    highest = max(acked)
    spans = gaps.overlap(0, highest)
    if not spans:
        return
    missing = {offset for span in spans for offset in range(span.begin, span.end)}.difference(acked)
    acked.extend(missing)
    acked.sort()
    gaps.chop(0, max(highest + 1, *(span.end for span in spans)))


_NO_END = 1 << 62
