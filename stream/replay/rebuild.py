"""Rebuild: the live worker's state computed from the orders topic by the core alone.

A worker consuming years of history pays faust's per-event price (about 1.5k events/s); the
core alone runs at tens of thousands. A rebuild reads the orders topic from its beginning up
to the end offsets it finds at start, runs each partition's core as the worker would (a
replay, every transition `replayed`), writes what the worker would have left behind, in the
worker's own formats (the tables' changelog topics, the compacted customer-state topic, and
on request the transitions), and only then commits the worker group's offsets at those end
offsets. A worker started afterwards restores the tables and goes on from there.

It refuses to run while the worker group has members: a running worker would commit and
write over it. A rebuild stopped half-way has committed nothing: run it again (changelogs
keep the last record per key, so the second run's records win).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ..collector import few_collections
from ..config import Config
from ..inputs.messages import InvalidEvent, TopicSource, customer_record, decode_event, encode, rejection
from ..kafka.batches import Batches
from ..kafka.client import client_settings, reader_settings
from ..kafka.partitioning import partition_for
from ..kafka.topics import change_topic
from ..wallclock import wall_clock_us
from ..worker.state import (
    CLOCKS_TABLE,
    CUSTOMERS_TABLE,
    ERASURES_TABLE,
    ClocksEntry,
    StoredCustomer,
    changelog_topic,
    clocks_key,
    encode_stored,
)
from .driver import Replay
from .memory import MEMORY_PER_EVENT, passes, plan_note
from .shared_count import SharedCount
from .worker_group import ensure_changelog_topics, refuse_if_group_has_members

# records read per fetch
FETCH_RECORDS = 10_000


@dataclass
class RebuildSummary:
    events: int = 0
    rejected: int = 0
    rerouted: int = 0  # events on another customer's partition, sent on as the worker does
    customers: int = 0
    erased: int = 0
    written: int = 0  # records produced, all topics
    transitions: Counter[str] = field(default_factory=Counter)
    end_offsets: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, other: RebuildSummary) -> None:
        self.events += other.events
        self.rejected += other.rejected
        self.rerouted += other.rerouted
        self.customers += other.customers
        self.erased += other.erased
        self.written += other.written
        self.transitions += other.transitions


def rebuild(
    config: Config,
    *,
    emit_transitions: bool = False,
    jobs: int = 1,
    now_us: Callable[[], int] = wall_clock_us,
    progress: Any = None,
    memory: int | None = None,
    note: Callable[[str], None] = lambda text: None,
) -> RebuildSummary:
    """Rebuild the worker's state from the orders topic; see the module's docstring.

    `jobs` processes share the partitions (partition p goes to job p % jobs): partitions
    are independent, each with its own clock and customers. Within a `memory` budget
    (bytes), the partitions are shared among more processes than `jobs`, `jobs` at a time
    (`stream.replay.memory`); `note` is told when that changes how the work runs."""
    started = time.monotonic()
    ends = asyncio.run(_prepare(config))
    groups = jobs
    if memory is not None:
        plan = passes(sum(ends.values()) * MEMORY_PER_EVENT, memory, jobs, config.kafka.partitions)
        told = plan_note(plan, memory, jobs, "rebuilding")
        if told is not None:
            note(told)
        groups = plan.groups
    partitions = config.kafka.partitions
    shares = [share for group in range(groups) if (share := list(range(group, partitions, groups)))]
    if len(shares) <= 1:
        summary = asyncio.run(
            _rebuild_partitions(config, list(ends), ends, emit_transitions, now_us, progress)
        )
    else:
        summary = _in_processes(config, shares, ends, emit_transitions, now_us, progress, jobs)
    asyncio.run(_commit(config, ends))
    summary.end_offsets = ends
    summary.seconds = time.monotonic() - started
    return summary


async def _prepare(config: Config) -> dict[int, int]:
    """Check that no worker runs, create the changelog topics; the end offsets to read to."""
    await refuse_if_group_has_members(config)
    await ensure_changelog_topics(config)
    consumer = AIOKafkaConsumer(**reader_settings(config), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(config.topics.orders, n) for n in range(config.kafka.partitions)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


def _in_processes(
    config: Config,
    shares: list[list[int]],
    ends: dict[int, int],
    emit_transitions: bool,
    now_us: Callable[[], int],
    progress: Any,
    at_once: int,
) -> RebuildSummary:
    context = multiprocessing.get_context("fork")  # the children share the parsed config
    results = context.SimpleQueue()
    read = SharedCount(context, flush_at=10_000)  # records
    processes = [
        context.Process(
            target=_job, args=(config, share, ends, emit_transitions, now_us, read, results), daemon=True
        )
        for share in shares
    ]
    waiting = list(processes)
    while waiting or any(process.is_alive() for process in processes):
        # the next share's process once fewer than `at_once` run; none after one failed
        if any(process.exitcode not in (None, 0) for process in processes):
            waiting.clear()
        while waiting and sum(process.is_alive() for process in processes) < at_once:
            waiting.pop(0).start()
        time.sleep(0.2)
        read.show(progress)
    read.show(progress)
    failed = [share for share, process in zip(shares, processes, strict=True) if process.exitcode != 0]
    if failed:
        raise RebuildFailed(f"rebuild of partition(s) {failed} failed; see the messages above")
    summary = RebuildSummary()
    for _ in processes:
        summary.add(results.get())
    return summary


def _job(
    config: Config,
    numbers: list[int],
    ends: dict[int, int],
    emit_transitions: bool,
    now_us: Callable[[], int],
    read: SharedCount,
    results: Any,
) -> None:
    with few_collections():
        summary = asyncio.run(_rebuild_partitions(config, numbers, ends, emit_transitions, now_us, read))
    read.close()
    results.put(summary)


async def _rebuild_partitions(
    config: Config,
    numbers: list[int],
    ends: dict[int, int],
    emit_transitions: bool,
    now_us: Callable[[], int],
    progress: Any,
) -> RebuildSummary:
    """Read, replay and write the partitions `numbers`."""
    summary = RebuildSummary()
    replay = Replay(config, rebuilding=True, now_us=now_us)
    producer = AIOKafkaProducer(
        **client_settings(config), acks="all", linger_ms=20, max_batch_size=1 << 20, max_request_size=4 << 20
    )
    await producer.start()
    outputs = _Outputs(producer, summary)
    erased: set[str] = set()
    try:
        feed = _Feed(config, replay, outputs, emit_transitions, erased, summary)
        await _read_orders(config, numbers, ends, feed, progress)
        summary.events = replay.stats.read + summary.rerouted
        summary.rejected = replay.stats.rejected
        summary.transitions = replay.stats.transitions + replay.stats.segment_changes + replay.stats.firings
        await _write_state(config, replay, numbers, outputs, ends, erased, summary)
        await outputs.flush()
    finally:
        await producer.stop()
    return summary


class RebuildFailed(RuntimeError):
    """A job process of the rebuild failed; nothing was committed."""


class _Outputs:
    """Sends in batches (`stream.kafka.batches`); every batch is confirmed before the commit."""

    def __init__(self, producer: AIOKafkaProducer, summary: RebuildSummary) -> None:
        self.summary = summary
        self.batches = Batches(lambda: producer)

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int) -> None:
        await self.batches.send([(topic, key, value, partition)])
        self.summary.written += 1

    async def flush(self) -> None:
        await self.batches.confirmed()  # a batch that failed for good raises here, before any commit


async def _read_orders(
    config: Config, numbers: list[int], ends: dict[int, int], feed: _Feed, progress: Any
) -> None:
    """Feed the orders partitions `numbers`, from their beginning to `ends`, to the cores."""
    consumer = AIOKafkaConsumer(
        **reader_settings(config), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(config.topics.orders, n) for n in numbers]
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in partitions if starts[tp] < ends[tp.partition]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=FETCH_RECORDS)
            for tp, records in batches.items():
                end = ends[tp.partition]
                for record in records:
                    if record.offset >= end:
                        break
                    await feed(tp.partition, record)
                if progress is not None:
                    progress.update(len(records))
                if await consumer.position(tp) >= end:
                    remaining.discard(tp)
    finally:
        await consumer.stop()


class _Feed:
    """One orders message through the rules, as the worker handles it."""

    def __init__(
        self,
        config: Config,
        replay: Replay,
        outputs: _Outputs,
        emit_transitions: bool,
        erased: set[str],
        summary: RebuildSummary,
    ) -> None:
        self.config = config
        self.replay = replay
        self.outputs = outputs
        self.emit_transitions = emit_transitions
        self.erased = erased
        self.summary = summary

    async def __call__(self, number: int, record: Any) -> None:
        config, raw = self.config, record.value or b""
        try:
            event = decode_event(raw)
        except InvalidEvent as invalid:
            self.replay.reject()
            await self._dead_letter(number, record, invalid)
            return
        owner = partition_for(event.customer_id, config.kafka.partitions)
        if owner != number:
            # the worker sends it on to its customer's partition, to be processed there: so
            # does the rebuild, past the end offsets, for the worker that comes next
            await self.outputs.send(config.topics.orders, event.customer_id.encode(), raw, owner)
            self.summary.rerouted += 1
            return
        try:
            changes = self.replay.apply(event)
        except InvalidEvent as invalid:
            await self._dead_letter(number, record, invalid)
            return
        if self.replay.last_erased is not None:
            self.erased.add(self.replay.last_erased)
        if self.emit_transitions:
            for change in changes:
                # every change of a rebuild is replayed: the fresh per-name topics get none
                topic = change_topic(config, change)
                await self.outputs.send(topic, change.customer_id.encode(), encode(change), number)

    async def _dead_letter(self, number: int, record: Any, invalid: InvalidEvent) -> None:
        # as the worker would: the event stays in the orders topic, its reason goes here
        source = TopicSource(topic=self.config.topics.orders, partition=number, offset=record.offset)
        dead = rejection(record.value or b"", str(invalid), source, keep_original=True)
        await self.outputs.send(self.config.topics.dead_letters, record.key, encode(dead), number)


async def _write_state(
    config: Config,
    replay: Replay,
    numbers: list[int],
    outputs: _Outputs,
    ends: dict[int, int],
    erased: set[str],
    summary: RebuildSummary,
) -> None:
    """What the worker's tables and state topic hold after processing the same messages."""
    app_id = config.worker.app_id
    customers = changelog_topic(app_id, CUSTOMERS_TABLE)
    clocks = changelog_topic(app_id, CLOCKS_TABLE)
    erasures = changelog_topic(app_id, ERASURES_TABLE)
    fingerprint = config.segments.fingerprint().encode()
    orders = config.topics.orders
    for number in numbers:
        partition = replay.partitions[number]
        last = ends[number] - 1 if ends.get(number) else None
        written_by = (orders, last) if last is not None else None
        for customer in partition.customers.values():
            key = customer.customer_id.encode()
            stored = StoredCustomer(customer, [], partition.clock_us, written_by, last, rebuilt=True)
            await outputs.send(customers, key, encode_stored(stored), number)
            record = customer_record(customer, partition.clock_us, partition.scorer)
            await outputs.send(config.topics.customer_state, key, encode(record), number)
            summary.customers += 1
        for marker, erased_at in partition.erasures.items():
            await outputs.send(erasures, marker.encode(), str(erased_at).encode(), number)
        if partition.clock_us is not None:
            await outputs.send(
                clocks, clocks_key(ClocksEntry.CLOCK, number), str(partition.clock_us).encode(), number
            )
        if last is not None:
            await outputs.send(
                clocks, clocks_key(ClocksEntry.ORDERS_THROUGH, number), str(last).encode(), number
            )
        await outputs.send(clocks, clocks_key(ClocksEntry.SEGMENTS, number), fingerprint, number)
    present = {c.customer_id for n in numbers for c in replay.partitions[n].customers.values()}
    for customer_id in erased - present:  # (one erased and back as a new customer is present)
        # a worker that held the customer before the rebuild must forget it too
        key = customer_id.encode()
        number = partition_for(customer_id, config.kafka.partitions)
        await outputs.send(customers, key, None, number)
        await outputs.send(config.topics.customer_state, key, None, number)
        summary.erased += 1


async def _commit(config: Config, ends: dict[int, int]) -> None:
    consumer = AIOKafkaConsumer(
        **client_settings(config), group_id=config.worker.app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        offsets = {TopicPartition(config.topics.orders, n): offset for n, offset in ends.items()}
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()
