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
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError

from .config import Config
from .kafka_client import client_settings
from .lifecycle.transitions import Change, Transition
from .messages import InvalidEvent, TopicSource, customer_record, encode, rejection
from .partitioning import partition_for
from .replay import Replay
from .wallclock import wall_clock_us
from .worker.state import (
    CLOCKS_TABLE,
    CUSTOMERS_TABLE,
    ERASURES_TABLE,
    StoredCustomer,
    changelog_topic,
    clock_key,
    encode_stored,
    orders_key,
    segments_key,
)

# records read per fetch, and sends in flight before waiting for them
FETCH_RECORDS = 10_000
SENDS_IN_FLIGHT = 20_000
COORDINATOR_ATTEMPTS = 60


class GroupActive(RuntimeError):
    """The worker group has members: a rebuild would race a running worker."""


@dataclass
class RebuildSummary:
    events: int = 0
    rejected: int = 0
    customers: int = 0
    erased: int = 0
    written: int = 0  # records produced, all topics
    transitions: Counter[str] = field(default_factory=Counter)
    end_offsets: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0


async def rebuild(
    config: Config,
    *,
    emit_transitions: bool = False,
    now_us: Callable[[], int] = wall_clock_us,
    progress: Any = None,
) -> RebuildSummary:
    """Rebuild the worker's state from the orders topic; see the module's docstring."""
    started = time.monotonic()
    await _refuse_if_group_has_members(config)
    await _ensure_changelog_topics(config)
    summary = RebuildSummary()
    replay = Replay(config, rebuilding=True, now_us=now_us)
    producer = AIOKafkaProducer(
        **client_settings(config), acks="all", linger_ms=20, max_batch_size=1 << 20, max_request_size=4 << 20
    )
    await producer.start()
    outputs = _Outputs(producer, summary)
    erased: set[str] = set()
    try:
        summary.end_offsets = await _read_orders(config, replay, outputs, emit_transitions, erased, progress)
        summary.events = replay.stats.read
        summary.rejected = replay.stats.rejected
        summary.transitions = replay.stats.transitions + replay.stats.segment_changes
        await _write_state(config, replay, outputs, summary.end_offsets, erased, summary)
        await outputs.flush()
    finally:
        await producer.stop()
    await _commit(config, summary.end_offsets)
    summary.seconds = time.monotonic() - started
    return summary


class _Outputs:
    """Sends with a bounded number in flight; every send is confirmed before the commit."""

    def __init__(self, producer: AIOKafkaProducer, summary: RebuildSummary) -> None:
        self.producer = producer
        self.summary = summary
        self.pending: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int) -> None:
        self.pending.append(await self.producer.send(topic, value, key=key, partition=partition))
        self.summary.written += 1
        if len(self.pending) >= SENDS_IN_FLIGHT:
            await self.flush()

    async def flush(self) -> None:
        pending, self.pending = self.pending, []
        await asyncio.gather(*pending)  # a send that failed for good raises here, before any commit


async def _refuse_if_group_has_members(config: Config) -> None:
    group = config.worker.app_id
    admin = AIOKafkaAdminClient(**client_settings(config))
    await admin.start()
    try:
        for attempt in range(COORDINATOR_ATTEMPTS):
            try:
                described = await admin.describe_consumer_groups([group])
                break
            except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
                # a new broker creates its offsets topic on the first group request
                if attempt == COORDINATOR_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()
    for response in described:
        for _error_code, group_id, state, _protocol_type, _protocol, members, *_ in response.groups:
            if group_id == group and members:
                raise GroupActive(
                    f"the worker group {group} has {len(members)} member(s) ({state}); stop every worker "
                    "before a rebuild"
                )


async def _ensure_changelog_topics(config: Config) -> None:
    """The tables' changelog topics, compacted, as faust would create them on first start."""
    names = [
        changelog_topic(config.worker.app_id, t) for t in (CUSTOMERS_TABLE, CLOCKS_TABLE, ERASURES_TABLE)
    ]
    admin = AIOKafkaAdminClient(**client_settings(config))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(n, config.kafka.partitions, 1, topic_configs={"cleanup.policy": "compact"})
                    for n in missing
                ]
            )
    finally:
        await admin.close()


async def _read_orders(
    config: Config,
    replay: Replay,
    outputs: _Outputs,
    emit_transitions: bool,
    erased: set[str],
    progress: Any,
) -> dict[int, int]:
    """Feed every orders partition, from its beginning to the end offset found at start, to
    the cores. Returns those end offsets."""
    topic = config.topics.orders
    consumer = AIOKafkaConsumer(
        **client_settings(config), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, n) for n in range(config.kafka.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in partitions if starts[tp] < ends[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=FETCH_RECORDS)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    await _feed(config, replay, outputs, emit_transitions, erased, tp.partition, record)
                if progress is not None:
                    progress.update(len(records))
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def _feed(
    config: Config,
    replay: Replay,
    outputs: _Outputs,
    emit_transitions: bool,
    erased: set[str],
    number: int,
    record: Any,
) -> None:
    raw = record.value or b""
    try:
        changes = replay.feed(raw)
    except InvalidEvent as invalid:
        # as the worker would have: the event stays in the orders topic, its reason goes here
        source = TopicSource(topic=config.topics.orders, partition=number, offset=record.offset)
        dead = rejection(raw, str(invalid), source, keep_original=True)
        await outputs.send(config.topics.dead_letters, record.key, encode(dead), number)
        return
    if replay.last_erased is not None:
        erased.add(replay.last_erased)
    if emit_transitions:
        for change in changes:
            await _send_change(config, outputs, change)


async def _send_change(config: Config, outputs: _Outputs, change: Change) -> None:
    # every change of a rebuild is replayed: the fresh per-name topics get none
    key = change.customer_id.encode()
    topic = config.topics.transitions if isinstance(change, Transition) else config.topics.segment_changes
    await outputs.send(topic, key, encode(change), partition_for(change.customer_id, config.kafka.partitions))


async def _write_state(
    config: Config,
    replay: Replay,
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
    for number, partition in enumerate(replay.partitions):
        last = ends[number] - 1 if ends.get(number) else None
        written_by = (orders, last) if last is not None else None
        for customer in partition.customers.values():
            key = customer.customer_id.encode()
            stored = StoredCustomer(customer, [], partition.clock_us, written_by, last)
            await outputs.send(customers, key, encode_stored(stored), number)
            await outputs.send(config.topics.customer_state, key, encode(customer_record(customer)), number)
            summary.customers += 1
        for marker, erased_at in partition.erasures.items():
            await outputs.send(erasures, marker.encode(), str(erased_at).encode(), number)
        if partition.clock_us is not None:
            await outputs.send(clocks, clock_key(number), str(partition.clock_us).encode(), number)
        if last is not None:
            await outputs.send(clocks, orders_key(number), str(last).encode(), number)
        await outputs.send(clocks, segments_key(number), fingerprint, number)
    present = {c.customer_id for p in replay.partitions for c in p.customers.values()}
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
