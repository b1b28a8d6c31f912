"""faust's Kafka consumer: its offset bookkeeping, read and corrected, and deliveries without
four tasks a message.

`ConsumerBook` is the one view of faust's private bookkeeping (`_committed_offset`, `_acked`,
`_gap`, `_read_offset`, `_unacked_messages`) and of aiokafka's fetch position; `correct`
puts the commit protocol's rules in place of faust's `ack`, `_new_offset`, `_commit_offsets`
and around `perform_seek` (`stream/worker/commit_protocol.py` says why each).

For every message it fetches, faust's consumer awaits `wait_first(deliver(message),
suspend_flow.wait())`. mode's `wait_first` runs each of the two, and the consumer's
`stopped` and `crashed` events, in a task of its own, waits for the first to finish and
cancels the other three: four tasks made, three cancelled, a message. Delivering almost
never waits (it puts the event in a stream's queue), yet in the worker those tasks took 11 %
of its event loop (py-spy over `bench/worker_bench.py`), the part of faust's per-message
price that buys nothing when nothing waits.

So the first step of whatever `wait_first` is given first runs at once, in the caller's
task. Done in that step, it is what faust's way would have returned, without a task. If it
has to wait (the flow suspended for a rebalance, a stream's buffer full, the producer's
buffer full), the rest of it goes through mode's `wait_first` as before: it is given up when
the flow is suspended or the consumer stops or crashes, exactly as faust gives up a delivery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from types import CoroutineType
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode.services import WaitArgT, WaitResults
from mode.utils.futures import notify


class _Rest:
    """The rest of a coroutine whose first step already ran and stopped at `waiting_on`: an
    awaitable that goes on from there, as `await` would have had it not been interrupted."""

    __slots__ = ("coroutine", "waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self.coroutine = coroutine
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, waiting_on = self.coroutine, self.waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as error:  # thrown in by the task driving us: a cancellation
                try:
                    waiting_on = coroutine.throw(error)
                except StopIteration as finished:
                    return finished.value
            else:
                try:
                    waiting_on = coroutine.send(sent)
                except StopIteration as finished:
                    return finished.value


def _close_unstarted(waitables: tuple[WaitArgT, ...]) -> None:
    for waitable in waitables:
        if isinstance(waitable, CoroutineType):
            waitable.close()  # never started: closing it keeps "never awaited" out of the logs


class FirstStepInline:
    """Mixin for a mode `Service`: `wait_first` runs the first step of its first coroutine in
    the caller's task, and makes tasks only if that step has to wait."""

    async def wait_first(self, *coros: WaitArgT, timeout: float | None = None) -> WaitResults:
        first = coros[0] if coros else None
        if not isinstance(first, CoroutineType):
            return await super().wait_first(*coros, timeout=timeout)  # type: ignore[misc,no-any-return]
        try:
            waiting_on = first.send(None)
        except StopIteration as finished:
            _close_unstarted(coros[1:])
            if self._stopped.is_set() or self._crashed.is_set():  # type: ignore[attr-defined]
                return WaitResults([], [], True)
            return WaitResults([first], [finished.value], False)
        except BaseException:
            _close_unstarted(coros[1:])
            raise
        rest = _Rest(first, waiting_on)
        results: WaitResults = await super().wait_first(rest, *coros[1:], timeout=timeout)  # type: ignore[misc]
        # callers look their coroutine up among the winners: give them back the one they passed
        done = [first if winner is rest else winner for winner in results.done]
        return WaitResults(done, results.results, results.stopped)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        kafka = super()._create_worker_consumer(transport)
        if getattr(self.consumer, "read_committed", False):
            # faust reads committed data only with its own transactions switched on, and those
            # send what the app produces outside them (docs/field-notes.md); aiokafka's fetcher
            # takes the level from here when it starts
            kafka._isolation_level = "read_committed"
        return kafka


class Consumer(FirstStepInline, faust_aiokafka.Consumer):  # type: ignore[misc]  # mode's own signature
    """faust's aiokafka consumer, delivering a message in the fetching task when it can, and
    reading committed messages only when `read_committed` is set before it starts."""

    read_committed = False

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


def read_committed_only(consumer: Any) -> None:
    """Make the worker's (not yet started) consumer skip what aborted transactions wrote."""
    consumer.read_committed = True


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with the consumer above."""

    Consumer = Consumer


class ConsumerBook:
    """faust's offset bookkeeping of one consumer, read and changed through names that say
    what they hold (faust-streaming 0.15.3, `Consumer`)."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer

    def committed(self, tp: TP) -> int | None:
        """The offset faust committed, or found committed at assignment (None: unknown)."""
        offset: int | None = self.consumer._committed_offset.get(tp)
        return offset

    def set_committed(self, offsets: dict[TP, int]) -> None:
        self.consumer._committed_offset.update(offsets)

    def acked(self, tp: TP) -> list[int] | None:
        """faust's own list of acked offsets not yet committed (changed in place)."""
        acked: list[int] | None = self.consumer._acked.get(tp)
        return acked

    def read_offset(self, tp: TP) -> int | None:
        offset: int | None = self.consumer._read_offset.get(tp)
        return offset

    def gaps(self, tp: TP, start: int = 0, end: int = 1 << 62) -> list[tuple[int, int]]:
        """faust's gaps (offsets it saw skipped over) overlapping [start, end), as [begin,
        end) spans, sorted."""
        tree = self.consumer._gap.get(tp)
        return sorted((i.begin, i.end) for i in tree.overlap(start, end)) if tree else []

    def cut_gaps(self, tp: TP, start: int, end: int) -> None:
        """Forget the gaps' offsets in [start, end)."""
        tree = self.consumer._gap.get(tp)
        if tree:
            tree.chop(start, end)

    def drop_unacked(self, message: Message) -> None:
        """No longer wait for `message` to be acked, without counting it as acked."""
        message.acked = True
        self.consumer._unacked_messages.discard(message)
        notify(self.consumer._waiting_for_ack)  # a revocation or shutdown may be waiting for it

    def fetch_position(self, tp: TP) -> int | None:
        """aiokafka's fetch position in an assigned partition (None: not known)."""
        try:
            state = _kafka_partition_state(self.consumer, tp)
            return None if state is None or state.awaiting_reset else int(state._position)
        except Exception:  # no consumer or assignment at this instant: look again later
            return None

    def describe(self, tp: TP) -> dict[str, Any]:
        """faust's and aiokafka's view of one partition, for a log line."""
        consumer = self.consumer
        facts: dict[str, Any] = {
            "flow_active": getattr(consumer, "flow_active", None),
            "faust_active": tp in (consumer._active_partitions or ()),
            "faust_paused": tp in consumer._paused_partitions,
            "faust_buffered": tp in consumer._buffered_partitions,
            "read_offset": self.read_offset(tp),
            "committed_offset": self.committed(tp),
            "acked": len(consumer._acked.get(tp, ())),
            "unacked_messages": len(consumer._unacked_messages),
            "highwater": consumer.highwater(tp),
            "stream_queues": [channel.queue.qsize() for channel in consumer.app.topics._topics],
        }
        try:
            state = _kafka_partition_state(consumer, tp)
            facts["kafka_paused"] = state.paused if state is not None else "unassigned"
            facts["kafka_position"] = state._position if state is not None else None
            facts["kafka_awaiting_reset"] = state.awaiting_reset if state is not None else None
        except Exception as error:  # diagnostics only: never let them stop the worker
            facts["kafka"] = repr(error)
        return facts


def _kafka_partition_state(consumer: Any, tp: TP) -> Any:
    """aiokafka's state of one assigned partition, or None when not assigned; raises when
    there is no client at this instant."""
    client = consumer._thread._ensure_consumer()
    return client._subscription.subscription.assignment.state_value(tp)


Ack = Callable[[Message], bool]
NewOffset = Callable[[TP], "int | None"]
CommitOffsets = Callable[[dict[TP, int]], Awaitable[bool]]


def correct(
    consumer: Any,
    *,
    ack: Callable[[Message, Ack], bool],
    new_offset: Callable[[TP, NewOffset], int | None],
    commit_offsets: Callable[[dict[TP, int], CommitOffsets], Awaitable[bool]],
    after_seek: Callable[[], Awaitable[None]],
) -> None:
    """Route faust's offset bookkeeping of `consumer` through the commit protocol: each
    function is given faust's own step to call (or not).

    - `Consumer.ack` (public, but faust's streams call it for messages never processed);
    - `Consumer._new_offset` (the offset a commit would move to);
    - `Consumer._commit_offsets` (the commit itself, after the producer's flush);
    - `Consumer.perform_seek` (the seek to the committed offsets after an assignment):
      `after_seek` runs once it is done.
    """
    faust_ack = consumer.ack
    faust_new_offset = consumer._new_offset
    faust_commit_offsets = consumer._commit_offsets
    faust_perform_seek = consumer.perform_seek

    def ack_message(message: Message) -> bool:
        return ack(message, faust_ack)

    def next_offset(tp: TP) -> int | None:
        return new_offset(tp, faust_new_offset)

    async def commit(offsets: Any, start_new_transaction: bool = True) -> bool:
        async def faust_commit(allowed: dict[TP, int]) -> bool:
            return bool(await faust_commit_offsets(allowed, start_new_transaction=start_new_transaction))

        return await commit_offsets(offsets, faust_commit)

    async def perform_seek() -> None:
        await faust_perform_seek()
        await after_seek()

    consumer.ack = ack_message
    consumer._new_offset = next_offset
    consumer._commit_offsets = commit
    consumer.perform_seek = perform_seek


def skip_fetched_once(consumer: Any, topic: str, skipped: set[tuple[int, int]]) -> None:
    """Fault injection for tests: faust's consumer passes over these (partition, offset)
    messages of `topic` once, as fetched. Its read offset then jumps, as to a message fetched
    before a rebalance, and it records the offsets passed over as a gap (docs/field-notes.md,
    "faust's commits crawled")."""
    if not skipped:
        return
    fetch = consumer.getmany

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        async for tp, message in fetch(timeout):
            if tp.topic == topic and (tp.partition, message.offset) in skipped:
                skipped.discard((tp.partition, message.offset))
                continue
            yield tp, message

    consumer.getmany = getmany  # before the fetcher starts: it looks the method up once
