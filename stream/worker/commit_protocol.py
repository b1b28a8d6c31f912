"""The commit protocol: what makes the live worker crash-safe, in one place.

Order, for every message: **write the store -> hand over its outputs -> ack it -> confirm
every output -> commit only what was processed.** A commit is the promise that everything
before the committed offset has been processed and its every output is in Kafka; a crash
anywhere leaves the uncommitted messages to be processed again, and the worker takes the
duplicates in its stride (they change nothing, and re-send what may be lost).

Invariants, each enforced where named (docs/architecture.md draws the path of an order):

1. **The customers' store is never behind its changelog.** Changed customers are written to
   the local store before any output is handed to aiokafka and before any other table write
   (`Batches` calls `Worker.flush_store` before a hand-over; the worker flushes before its
   clocks and erasures writes).
2. **A message is acked only after all its outputs are batched, in creation order per topic
   partition** (the agent in `app.py`: process, `hand_over(send_outputs)`, then ask for the
   next event, which acks this one).
3. **No commit until every output handed over since the last commit is acked by Kafka;**
   a failure stops the process first (`flush_and_confirm`, which faust awaits before every
   commit; `stop_before_commit`, exit 74).
4. **Only acks of messages processed in this ownership count.** Refused messages, acks
   while the flow is stopped and acks from older generations are dropped (`ack`).
5. **No commit over a hole at the head**: nothing while the committed offset is unknown or
   the first acked offset (or gap) is past it (`new_offset`).
6. **A never-committed partition starts at its beginning** (`after_seek`).
7. **faust's gaps cannot commit unprocessed orders**: cut at the first unprocessed offset,
   and folded into the acked offsets once each below the highest ack (`new_offset`).
8. **No orders offset is committed past the message after the last one processed**
   (`processed_only`, the last line of defence whatever faust's bookkeeping says).
9. **A message past an unprocessed offset is not processed**: it is refused and the
   partition read again from the hole (`Worker.on_message` answers with where; the agent
   calls `refuse` and seeks).
10. **A message whose handling raised is never committed**: the process stops before any
    commit (`stop_unprocessed`, exit 70).

The faust and aiokafka parts these rules correct are reached through `faust_internals` only.

**Exactly-once mode** (`worker.processing_guarantee = "exactly_once"`, `Transactions` below)
keeps every rule above and commits transactions instead of offsets:

11. **One transaction per orders partition, its own producer** (a fixed transactional id per
    partition: aiokafka has no KIP-447). Everything a message of the partition causes that
    readers outside the engine see (transitions, segment changes, firings, on every topic;
    customer states; dead letters) goes through it, and the orders and ticks offsets of the
    messages handled are sent to it (`Transactions.commit`). faust commits nothing.
12. **A transaction commits whole messages**: a message is handled under its partition's lock,
    which a commit takes to close the transaction's list of messages; the offsets committed
    are those of the messages handled whole, and what messages handled after that produce
    waits for the next transaction.
13. **Nothing outside a transaction is behind it**: the changelogs and the orders sent on to
    their customer's partition, which leave outside transactions (`Outputs.outside_transactions`
    says why), are handed over and confirmed before a transaction commits (invariant 3's flush).
14. **What is sent again waits for its message**: after a take-up, the outputs of messages past
    the committed offset leave with that message's redelivery, in the transaction committing
    its offset (`Resends.release`).
15. **No message below the committed offset is handled**, and none handled twice in one
    ownership: a zombie's transaction or a seek back would otherwise send its outputs twice.
    After a session's time without a commit, a message waits until Kafka says the producer
    is not fenced (`_still_ours`): a worker frozen and woken would write on meanwhile.
16. **Fencing gives a partition up, it does not stop the worker**: a producer fenced by the
    partition's new owner is closed and the partition's messages refused until an assignment
    gives it back. Any other failure of a transaction stops the process (exit 74): a restart
    begins at the last committed transaction.

Why each rule, found by which failure (faust-streaming 0.15.3):

- While a rebalance or a shutdown stops the flow, and after a rebalance for messages fetched
  before it, a stream skips the message it holds and acks it without processing it; and a
  revocation clears a partition's acked offsets before it waits for the streams, so a later
  ack starts the partition's bookkeeping afresh. The stale offsets then filled a hole when the
  partition came back: one order lost in a test where a second worker joined and left (4).
- faust commits the end of the first run of acked offsets without checking that the run
  starts at the committed offset when that offset is unknown or 0: a worker that processed one
  message near the end of a never-committed partition committed past every message before it
  (955 lost in the churn test) (5, 6). Taking the consumer's position as a never-committed
  partition's start was wrong too: messages fetched while the streams were paused for a
  restore were dropped, and the position was past them (6).
- faust fills a gap (meant for transaction markers) with every offset between the last one it
  read and the next, and its read offset is reset by a seek while fetched messages are still
  handed over: a worker that ran 180 ms committed hundreds of orders it never saw (7). It also
  appends a gap's offsets whether acked or not, and an offset held twice cut its commits to
  one offset each: 148 offsets in 7 minutes, 28,000 behind (7).
- faust's producer flush gives up after 0.1 s with messages queued, and a failed send is only
  logged: offsets ran ahead of the changelog, and a partition handed over came back without
  the customers written last (3).
- faust restarts an agent whose handling raised and goes on, and the commit moves past the
  message: the soak found three orders lost so (10).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

from aiokafka.errors import IllegalOperation, InvalidProducerEpoch, KafkaTimeoutError, ProducerFenced
from aiokafka.structs import TopicPartition
from faust.types import TP, Message

from ..kafka.batches import Batches, HandOverFailed
from .faust_internals.consumer import Ack, CommitOffsets, ConsumerBook, NewOffset, correct
from .faust_internals.producer import DrainingBuffer, replace_buffer, wrap_flush

log = logging.getLogger(__name__)

# sysexits' EX_SOFTWARE: handling a message raised; stopped before its offset is committed
EXIT_PROCESSING_FAILED = 70
# sysexits' EX_IOERR: Kafka refused or lost a message; stopped before the commit
EXIT_SEND_FAILED = 74

ProcessedThrough = Callable[[int], "int | None"]


class CommitProtocol:
    """One per app: the offsets a commit may move to, and the order of flush and commit.

    `processed_through(partition)`: the last orders offset processed in this ownership,
    None before the first (the worker's bookkeeping, `offsets.PartitionOffsets`)."""

    def __init__(self, app: Any, orders_topic: str | None, processed_through: ProcessedThrough) -> None:
        self.app = app
        self.book = ConsumerBook(app.consumer)
        self.orders_topic = orders_topic
        self.processed_through = processed_through
        self._refused: set[tuple[TP, int]] = set()
        # sent straight to aiokafka (the worker's batches) since the last commit: (topic, ack)
        self._sent_direct: list[tuple[str, asyncio.Future[Any]]] = []
        self.buffer: DrainingBuffer | None = None
        # hands over what the worker holds unsent, before each commit
        self.before_flush: Callable[[], Awaitable[None]] | None = None
        # exactly-once mode: the topics whose offsets transactions commit, not faust
        self.transactional: frozenset[str] = frozenset()
        self._flushing = asyncio.Lock()

    @classmethod
    def install(
        cls, app: Any, orders_topic: str | None = None, processed_through: ProcessedThrough = lambda n: None
    ) -> CommitProtocol:
        """Put the protocol's rules in place of faust's on `app`'s consumer."""
        protocol = cls(app, orders_topic, processed_through)
        correct(
            app.consumer,
            ack=protocol.ack,
            new_offset=protocol.new_offset,
            commit_offsets=protocol.commit_offsets,
            after_seek=protocol.after_seek,
        )
        return protocol

    def install_flush(self, producer: Any) -> DrainingBuffer:
        """Make the (not yet started) producer's flush, which faust awaits before every
        commit, hand over and confirm every output (invariant 3)."""
        self.buffer = replace_buffer(producer)
        wrap_flush(producer, self.flush_and_confirm)
        return self.buffer

    # -- which acks count (4, 9) ----------------------------------------------------------

    def refuse(self, message: Message) -> None:
        """Make the coming ack of `message` count for nothing: the worker did not process it."""
        self._refused.add((message.tp, message.offset))

    def _taken_back(self, message: Message) -> bool:
        key = (message.tp, message.offset)
        if key not in self._refused:
            return False
        self._refused.discard(key)
        return True

    def ack(self, message: Message, faust_ack: Ack) -> bool:
        refused = self._taken_back(message)
        app = self.app
        if (
            not refused
            and app.flow_control.is_active()
            and message.generation_id == app.consumer_generation_id
        ):
            return faust_ack(message)
        self.book.drop_unacked(message)
        return False

    # -- where a commit may go (5, 6, 7, 8) -----------------------------------------------

    def new_offset(self, tp: TP, faust_new_offset: NewOffset) -> int | None:
        book = self.book
        if tp.topic == self.orders_topic:
            last = self.processed_through(tp.partition)
            first_unprocessed = book.committed(tp) if last is None else last + 1
            if first_unprocessed is not None:
                self._chop_gaps(tp, first_unprocessed)
        acked = book.acked(tp)
        if acked:
            first = min(acked)
            gaps = book.gaps(tp)
            if gaps:  # offsets faust saw skipped over (transaction markers): as good as acked
                first = min(first, gaps[0][0])
            committed = book.committed(tp)
            if committed is None or first > committed:
                return None  # a hole before the first acked offset, or no known start
            self._merge_gaps(tp, acked)
        return faust_new_offset(tp)

    async def commit_offsets(self, offsets: dict[TP, int], faust_commit: CommitOffsets) -> bool:
        if self.transactional:
            # the partitions' transactions commit these (11)
            offsets = {tp: offset for tp, offset in offsets.items() if tp.topic not in self.transactional}
            if not offsets:
                return True
        if self.orders_topic is not None:
            offsets = self.processed_only(offsets)
        return await faust_commit(offsets)

    async def after_seek(self) -> None:
        consumer = self.app.consumer
        never_committed = [
            tp
            for tp in consumer.assignment()
            if self.app.topics.acks_enabled_for(tp.topic) and self.book.committed(tp) is None
        ]
        if never_committed:
            # aiokafka leaves such a partition where its fetcher got to, and faust may have
            # dropped what it fetched while the streams were paused: start at the beginning
            starts = dict(await consumer.earliest_offsets(*never_committed))
            await consumer.seek_wait(starts)
            self.book.set_committed(starts)

    def processed_only(self, offsets: dict[TP, int]) -> dict[TP, int]:
        """The offsets to commit, none of the orders topic past the message after the last
        one this worker processed."""
        book = self.book
        allowed: dict[TP, int] = {}
        for tp, offset in offsets.items():
            if tp.topic != self.orders_topic:
                allowed[tp] = offset
                continue
            last = self.processed_through(tp.partition)
            limit = None if last is None else last + 1
            if limit is not None and offset <= limit:
                allowed[tp] = offset
                continue
            acked = book.acked(tp) or []
            log.warning(
                "%s[%d]: faust would commit %d, past the last offset processed here (%s); committing %s "
                "(committed %s, read offset %s, acked %d from %s to %s, gaps %s)",
                tp.topic,
                tp.partition,
                offset,
                last,
                limit,
                book.committed(tp),
                book.read_offset(tp),
                len(acked),
                min(acked, default=None),
                max(acked, default=None),
                book.gaps(tp),
            )
            committed = book.committed(tp)
            if limit is not None and (committed is None or limit > committed):
                allowed[tp] = limit
        return allowed

    def _chop_gaps(self, tp: TP, first_unprocessed: int) -> None:
        """Keep faust's gaps of an orders partition from reaching past the last message
        processed: a real gap is a jump the worker sees in the offsets it processes, so the
        offset after the last one processed bounds every gap."""
        beyond = self.book.gaps(tp, first_unprocessed)
        if not beyond:
            return
        log.warning(
            "%s[%d]: faust marked offsets %s as a gap at or past %d, the first offset not processed "
            "(read offset %s, committed %s); they are not committed",
            tp.topic,
            tp.partition,
            ", ".join(f"{b}..{e - 1}" for b, e in beyond),
            first_unprocessed,
            self.book.read_offset(tp),
            self.book.committed(tp),
        )
        self.book.cut_gaps(tp, first_unprocessed, _NO_END)

    def _merge_gaps(self, tp: TP, acked: list[int]) -> None:
        """Fold faust's gaps below the highest acked offset of `tp` into its acked offsets,
        each offset once (faust appends them whether acked or not)."""
        highest = max(acked)
        spans = self.book.gaps(tp, 0, highest)
        if not spans:
            return
        missing = {offset for begin, end in spans for offset in range(begin, end)}.difference(acked)
        acked.extend(missing)
        acked.sort()
        self.book.cut_gaps(tp, 0, max(highest + 1, *(end for _, end in spans)))

    # -- hand over and confirm before the commit (1, 3) -----------------------------------

    def confirm_before_commit(self, topic: str, sent: asyncio.Future[Any]) -> None:
        """Have the next commit wait for this message, sent to aiokafka without faust."""
        self._sent_direct.append((topic, sent))

    async def hand_over(self, step: Awaitable[None]) -> None:
        """Run a hand-over of outputs; a batch Kafka refused stops the process (3)."""
        try:
            await step
        except HandOverFailed as failed:
            stop_before_commit([(failed.topic, failed.error)])

    async def flush_and_confirm(self, faust_flush: Callable[[], Awaitable[None]]) -> None:
        # one at a time: a second flush finding the acks taken by the first would return
        # before they are confirmed, and a commit follow it (exactly-once mode's timer and
        # faust's commit both flush)
        async with self._flushing:
            await self._flush_and_confirm(faust_flush)

    async def _flush_and_confirm(self, faust_flush: Callable[[], Awaitable[None]]) -> None:
        if self.before_flush is not None:
            await self.before_flush()
        await faust_flush()
        # after the flush: every message queued when the commit began has been handed over
        sent = self.buffer.take_handed() if self.buffer is not None else []
        direct, self._sent_direct = self._sent_direct, []
        pending = sent + direct
        results = await asyncio.gather(*(ack for _, ack in pending), return_exceptions=True)
        failures = [
            (topic, result)
            for (topic, _), result in zip(pending, results, strict=True)
            if isinstance(result, BaseException)
        ]
        if failures:
            stop_before_commit(failures)


# The producer can commit nothing more: fenced by a newer one of its transactional id, or
# (IllegalOperation) left in a fatal state by such a fence met in its sending task; or it
# cannot in time (a fenced producer's sends are never acked: after `CONFIRM_TIMEOUT`, or
# aiokafka's own timeout of a send waiting for room).
CANNOT_COMMIT = (ProducerFenced, InvalidProducerEpoch, IllegalOperation, KafkaTimeoutError, TimeoutError)
# aiokafka gives up a batch after its request timeout (40 s): longer than that, nothing comes
CONFIRM_TIMEOUT = 60.0


class PartitionTransaction:
    """The open transaction of one orders partition: its producer, its batches, and the last
    offset of each input topic whose message it holds the outputs of."""

    def __init__(self, number: int, producer: Any, batches: Batches) -> None:
        self.number = number
        self.producer = producer
        self.batches = batches
        # held while a message of the partition is handled, and by a commit while it takes
        # the messages handled so far (12)
        self.lock = asyncio.Lock()
        self.through: dict[str, int] = {}
        # when Kafka last took a commit of it (or the producer started): time.monotonic()
        self.known_alive_at = time.monotonic()
        # one commit of this transaction at a time (the timer's, a revocation's)
        self.committing = asyncio.Lock()
        # outputs of messages handled while the transaction commits: they go into the next
        # one, in order, once it has begun
        self.waiting: list[Any] | None = None


class Handling:
    """One message's turn: `go` says whether to handle it; `done()` once it was, whole."""

    def __init__(self, go: bool, transaction: PartitionTransaction | None = None) -> None:
        self.go = go
        self.transaction = transaction
        self.handled: tuple[str, int] | None = None

    def done(self, topic: str, offset: int) -> None:
        self.handled = (topic, offset)


class AtLeastOnce:
    """The scope of a message without transactions: every message is handled. One object
    for every message: nothing made per message on the default path."""

    _always = Handling(True)

    def handling(self, message: Message) -> AtLeastOnce:
        return self

    async def __aenter__(self) -> Handling:
        return self._always

    async def __aexit__(self, *exc_info: object) -> None:
        return None


OpenProducer = Callable[[int], Any]
CommittedOffsets = Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]]


class Transactions:
    """Exactly-once mode (invariants 11-16): a transaction per owned orders partition,
    committed every `interval` seconds with the offsets of the messages it holds."""

    def __init__(
        self,
        app: Any,
        protocol: CommitProtocol,
        input_topics: tuple[str, ...],
        open_producer: OpenProducer,
        committed_offsets: CommittedOffsets,
        give_up: Callable[[int], None],
        take_back_after: float,
    ) -> None:
        """`open_producer(number)`: a new transactional producer for orders partition
        `number`; `committed_offsets(tps)`: the group's committed offsets, read from Kafka;
        `give_up(number)`: the worker forgets the partition (its producer was fenced);
        `take_back_after`: seconds after which a partition given up and still assigned here
        is taken back (the consumer group's session timeout)."""
        self.take_back_after = take_back_after
        self.app = app
        self.protocol = protocol
        self.book = protocol.book
        self.input_topics = input_topics
        self.open_producer = open_producer
        self.committed_offsets = committed_offsets
        self.give_up = give_up
        self.group_id: str = app.conf.id
        self.open: dict[int, PartitionTransaction] = {}
        # partitions whose producer was fenced, and when (time.monotonic())
        self.given_up: dict[int, float] = {}
        # given up and taken back: read again from the committed offsets
        self.retaken: set[int] = set()
        self._opening = asyncio.Lock()
        self._stopping: set[asyncio.Future[None]] = set()
        # tests only (`faults`): runs as a transaction is about to commit
        self.before_commit: Callable[[int], None] = lambda number: None
        protocol.transactional = frozenset(input_topics)

    # -- a message's turn (12, 15) -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def handling(self, message: Message) -> AsyncIterator[Handling]:
        transaction = await self._ready(message.partition)
        if transaction is None or self._below_committed(message):
            yield Handling(False)
            return
        async with transaction.lock:
            if self.open.get(message.partition) is transaction:
                await self._still_ours(transaction)
            if self.open.get(message.partition) is not transaction:  # given up meanwhile
                yield Handling(False)
                return
            handling = Handling(True, transaction)
            yield handling
            if handling.handled is not None:
                topic, offset = handling.handled
                transaction.through[topic] = max(offset, transaction.through.get(topic, -1))

    async def _still_ours(self, transaction: PartitionTransaction) -> None:
        """After a session's time without a commit (a partition left idle, or a process
        frozen: a stopped VM), ask Kafka whether the producer is fenced before handling a
        message: a frozen worker woken would otherwise write to the changelogs after the
        partition's new owner until its next commit told it so (docs/exactly-once.md)."""
        if time.monotonic() - transaction.known_alive_at < self.take_back_after:
            return
        number = transaction.number
        offsets = {
            TopicPartition(tp.topic, tp.partition): committed
            for tp in (TP(topic, number) for topic in self.input_topics)
            if (committed := self.book.committed(tp)) is not None
        }
        if not offsets:
            return
        try:
            # the committed offsets again: if nobody fenced it, they commit as they are
            await transaction.producer.send_offsets_to_transaction(offsets, self.group_id)
        except Exception as error:
            if isinstance(error, CANNOT_COMMIT):
                self._cannot_commit(transaction, error)
                return
            stop_before_commit([(f"the transaction of orders partition {number}", error)])
        transaction.known_alive_at = time.monotonic()

    def _below_committed(self, message: Message) -> bool:
        committed = self.book.committed(message.tp)
        return committed is not None and message.offset < committed

    async def ready(self, numbers: set[int]) -> None:
        """Open the transactions of `numbers` (before outputs of theirs are sent)."""
        for number in sorted(numbers):
            await self._ready(number)

    async def _ready(self, number: int) -> PartitionTransaction | None:
        transaction = self.open.get(number)
        if transaction is not None or self._still_given_up(number):
            return transaction
        async with self._opening:
            transaction = self.open.get(number)
            if transaction is None and not self._still_given_up(number):
                try:
                    transaction = await self._open(number, retaken=number in self.retaken)
                except Exception as error:
                    # its message is refused; the next one finds the hole and reads it again
                    log.warning("orders partition %d: its transaction could not be opened: %r", number, error)
                    return None
                self.retaken.discard(number)
            return transaction

    def _still_given_up(self, number: int) -> bool:
        """A fenced partition waits for the rebalance that gives it to its new owner; if none
        comes within a session, nobody else has it: Kafka aborted a transaction that ran past
        its timeout (a worker stalled for a minute), which fences its producer too."""
        fenced_at = self.given_up.get(number)
        if fenced_at is None:
            return False
        if time.monotonic() - fenced_at < self.take_back_after:
            return True
        log.warning(
            "orders partition %d: still assigned here a session after it was fenced; taking it back", number
        )
        del self.given_up[number]
        self.retaken.add(number)
        return False

    async def _open(self, number: int, retaken: bool = False) -> PartitionTransaction:
        producer = self.open_producer(number)
        try:
            # fences the partition's previous producer; its open transaction is aborted
            await producer.start()
            await producer.begin_transaction()
            await self._catch_up_with_committed(number, retaken)
        except BaseException:
            await _stop(producer)
            raise
        # its batches' acks kept, and confirmed before the commit: aiokafka commits a
        # transaction whose batch failed (a record too large, a missing ACL)
        transaction = PartitionTransaction(number, producer, Batches(lambda: producer))
        self.open[number] = transaction
        return transaction

    async def _catch_up_with_committed(self, number: int, retaken: bool) -> None:
        """A previous owner may have committed after faust read the committed offsets at the
        assignment and before the start above fenced it: begin where it ended (15). A
        partition taken back reads on from the committed offsets too: what it handled since
        was aborted."""
        tps = [TopicPartition(topic, number) for topic in self.input_topics]
        stored = await self.committed_offsets(tps)
        moved = {}
        for tp in tps:
            committed = stored.get(tp, -1)
            faust_tp = TP(tp.topic, tp.partition)
            known = self.book.committed(faust_tp)
            if committed >= 0 and (known is None or committed > known or retaken):
                moved[faust_tp] = committed
        if moved:
            log.warning(
                "partition %d: committed while it changed hands, now %s; reading on from there", number, moved
            )
            self.book.set_committed(moved)
            await self.app.consumer.seek_wait(moved)

    # -- outputs ---------------------------------------------------------------------

    async def send(self, number: int, outputs: list[Any]) -> None:
        """Outputs of a message of partition `number`, into its transaction."""
        transaction = self.open.get(number)
        if transaction is None:
            return  # given up while its message was handled: its new owner handles it again
        if transaction.waiting is not None:
            transaction.waiting.extend(outputs)
            return
        await self._send(transaction, outputs)

    async def _send(self, transaction: PartitionTransaction, outputs: list[Any]) -> None:
        try:
            await transaction.batches.send(outputs)
        except HandOverFailed as failed:
            if isinstance(failed.error, CANNOT_COMMIT):
                self._cannot_commit(transaction, failed.error)
                return
            stop_before_commit([(failed.topic, failed.error)])

    # -- commits (11, 13) -------------------------------------------------------------

    async def commit(self, numbers: set[int] | None = None) -> None:
        """Commit the open transactions (of `numbers`, else all) that hold a message.

        The messages' locks are held only to take the messages handled so far: while the
        commit's round trips last, the agent goes on, its outputs waiting for the next
        transaction."""
        due = sorted(
            (t for t in self.open.values() if numbers is None or t.number in numbers),
            key=lambda t: t.number,
        )
        async with contextlib.AsyncExitStack() as held:
            for transaction in due:
                await held.enter_async_context(transaction.committing)
            taken: list[tuple[PartitionTransaction, dict[str, int]]] = []
            async with contextlib.AsyncExitStack() as locks:
                for transaction in due:
                    await locks.enter_async_context(transaction.lock)
                for transaction in due:
                    if transaction.through and self.open.get(transaction.number) is transaction:
                        taken.append((transaction, transaction.through))
                        transaction.through = {}
                        transaction.waiting = []
            if not taken:
                return
            # what left outside the transactions, confirmed before they commit (13)
            await self.app.producer.flush()
            await asyncio.gather(*(self._commit(t, through) for t, through in taken))

    async def _commit(self, transaction: PartitionTransaction, through: dict[str, int]) -> None:
        number = transaction.number
        offsets = {TopicPartition(topic, number): offset + 1 for topic, offset in through.items()}
        try:
            await transaction.batches.hand_over_all()
            self.before_commit(number)
            # first: it fails at once when the producer was fenced, whose batches are never acked
            await transaction.producer.send_offsets_to_transaction(offsets, self.group_id)
            await asyncio.wait_for(transaction.batches.confirmed(), CONFIRM_TIMEOUT)
            await transaction.producer.commit_transaction()
        except Exception as error:
            cause = error.error if isinstance(error, HandOverFailed) else error
            if isinstance(cause, CANNOT_COMMIT):
                self._cannot_commit(transaction, cause)
                return
            stop_before_commit([(f"the transaction of orders partition {number}", cause)])
        self.book.set_committed({TP(tp.topic, tp.partition): offset for tp, offset in offsets.items()})
        transaction.known_alive_at = time.monotonic()
        await transaction.producer.begin_transaction()
        # in the order they were made; what comes meanwhile joins the list
        while transaction.waiting:
            waiting, transaction.waiting = transaction.waiting, []
            await self._send(transaction, waiting)
        transaction.waiting = None

    async def close(self, numbers: set[int]) -> None:
        """Partitions revoked: commit what they hold and stop their producers."""
        await self.commit(numbers)
        for number in sorted(numbers):
            transaction = self.open.pop(number, None)
            if transaction is not None:
                await _stop(transaction.producer, abort=True)

    def assigned(self, numbers: set[int]) -> None:
        """An assignment: partitions given up before may be owned again."""
        for number in numbers:
            self.given_up.pop(number, None)

    async def stop(self) -> None:
        await self.close(set(self.open))

    def _cannot_commit(self, transaction: PartitionTransaction, cause: BaseException) -> None:
        number = transaction.number
        log.warning(
            "orders partition %d: its transaction can commit nothing more (%r: fenced by its new "
            "owner's producer, or unanswered); giving the partition up until an assignment gives "
            "it back",
            number,
            cause,
        )
        if self.open.get(number) is transaction:
            del self.open[number]
        self.given_up[number] = time.monotonic()
        self.give_up(number)
        stopping = asyncio.ensure_future(_stop(transaction.producer))
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)


async def _stop(producer: Any, abort: bool = False) -> None:
    """Stop a transactional producer; `abort`: its open transaction first, which holds nothing
    committed since and would keep read_committed readers of its partitions waiting until the
    partition's next owner starts."""
    if abort:
        with contextlib.suppress(Exception):  # fenced: the new owner aborted it already
            await producer.abort_transaction()
    try:
        await producer.stop()
    except Exception as error:  # fenced or closed: nothing of it can be committed any more
        log.info("stopping a transactional producer: %r", error)


def stop_before_commit(failures: list[tuple[str, BaseException]]) -> NoReturn:
    """End the process: a message could not be sent even after the producer's retries.

    faust only logs such a failure and goes on to commit the offsets past the message that
    made it, and a transition or a customer record would be lost for good. Stopping before
    the commit leaves that message to be processed again when the worker starts, after the
    cause (a topic's size limit, its ACLs, a broker away for minutes) is put right.
    """
    topic, error = failures[0]
    log.critical(
        "%d message(s) could not be sent after the producer's retries, the first to %s: %r; "
        "stopping before their offsets are committed, so they are processed again on restart",
        len(failures),
        topic,
        error,
    )
    logging.shutdown()
    os._exit(EXIT_SEND_FAILED)


def stop_unprocessed(message: Any) -> NoReturn:
    """End the process: handling `message` raised, half done.

    A bug fixed, or a fault gone, it is processed on restart; a message that always fails
    keeps the worker from going past it, in plain sight (a supervisor restarting it, and
    this log)."""
    log.critical(
        "handling %s[%d] offset %d failed; stopping before its offset is committed, so it is "
        "handled again on restart",
        message.topic,
        message.partition,
        message.offset,
        exc_info=True,
    )
    logging.shutdown()
    os._exit(EXIT_PROCESSING_FAILED)


_NO_END = 1 << 62
