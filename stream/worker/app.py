"""The live worker, composed: a faust app, its tables, the commit protocol, the agent, the
outputs' way out, the tick timer and the pages.

Everything the worker decides is in `runtime.Worker` (and the core below it); what makes it
crash-safe is in `commit_protocol`; every faust private it reads or replaces is in
`faust_internals`. This module only puts the parts together.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import TP

from ..config import Config
from ..kafka.batches import Batches
from ..kafka.client import faust_broker_url, faust_credentials, group_offsets, transactional_producer
from .commit_protocol import AtLeastOnce, CommitProtocol, Transactions, stop_unprocessed
from .faults import Process, install_faults, install_transaction_faults
from .faust_internals.consumer import ConsumerBook, Transport, read_committed_only
from .faust_internals.producer import DrainingBuffer, aiokafka_producer
from .faust_internals.tables import restore_resolving, restore_whole_next_time
from .metrics import WorkerMetrics
from .monitor import QuietMonitor
from .pages import add_health_pages, add_metrics_page
from .runtime import Worker
from .state import CLOCKS_TABLE, CUSTOMERS_TABLE, ERASURES_TABLE, restored_clocks_entry, restored_customer
from .upkeep import Upkeep, owned_orders_partitions

MiB = 1024 * 1024
# how long an output waits, at most, for its batch to fill before it is handed to aiokafka
LINGER_SECONDS = 0.020
# Events fetched and waiting for the agent. faust pauses a partition's fetching when its
# buffer passes 4/5 of this, but what was fetched (up to 1 MiB a partition) still goes in:
# at faust's 4,096 the buffer ran full for seconds at a time, each delivery then waiting
# for the agent to take one, at about 40 % of the rate of a buffer that has room
# (docs/field-notes.md). About 20 MB of orders at most.
STREAM_BUFFER = 16384
log = logging.getLogger(__name__)


def _rocksdb_options() -> dict[str, Any]:
    # Faust's default gives every table partition a 2 GiB block cache; a fresh dict per
    # table, because faust's store pops keys out of the mapping it is given.
    return {
        "block_cache_size": 64 * MiB,
        "block_cache_compressed_size": 0,
        "write_buffer_size": 16 * MiB,
        "max_write_buffer_number": 2,
    }


def create_app(config: Config) -> tuple[faust.App, Worker]:
    """A Faust app running the lifecycle worker for `config`."""
    app = _faust_app(config)
    tables = _declare_tables(app, config)
    metrics = WorkerMetrics()
    book = ConsumerBook(app.consumer)
    worker = Worker(
        config,
        tables.customers,
        tables.clocks,
        tables.erasures,
        committed_offset=lambda topic, n: book.committed(TP(topic, n)),
        owned_partitions=lambda: owned_orders_partitions(app, config.topics.orders),
        resend_changelog=tables.send_changelog,
        metrics=metrics,
    )
    protocol = CommitProtocol.install(app, config.topics.orders, worker.processed_through)
    transactions = (
        _transactions(app, config, worker, protocol, tables) if config.worker.exactly_once else None
    )
    process = install_faults(app, config.topics.orders, protocol, partial(_process, worker))
    send_outputs = _outputs(app, worker, protocol, tables.customers, transactions)
    assert protocol.buffer is not None
    scope = transactions or AtLeastOnce()
    _agent(app, config, worker, protocol, scope, protocol.buffer, send_outputs, process, metrics)
    Upkeep(app, config, worker, metrics, send_outputs).install()

    app.task(_quiet_client_logs)
    app.task(_dump_tasks_on_sigusr2)
    add_health_pages(app)
    if config.worker.faust_metrics:
        # faust's own metrics (messages, commits, rebalances, offsets) join ours on /metrics
        setup_prometheus_sensors(app, registry=metrics.registry, name_prefix="faust")
    else:
        add_metrics_page(app, metrics.registry)
    return app, worker


def _faust_app(config: Config) -> faust.App:
    rocksdb = config.worker.store == "rocksdb"
    app = faust.App(
        config.worker.app_id,
        broker=faust_broker_url(config),
        broker_credentials=faust_credentials(config),
        store="rocksdb://" if rocksdb else "memory://",
        datadir=config.worker.data_dir,
        web_port=config.worker.web_port,
        web_host=config.worker.web_host,
        web_tables_enabled=False,  # table views would publish customer data over HTTP
        topic_partitions=config.kafka.partitions,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=STREAM_BUFFER,
        producer_acks=-1,
        # aiokafka holds one open batch per partition and sends one request per broker at a
        # time; at faust's default of 16 KiB the worker stalled waiting for batches to drain
        # (753 -> 1,130 events/s in bench/worker_bench.py). A quarter MiB stays well under
        # the 1 MiB a topic accepts by default.
        producer_max_batch_size=256 * 1024,
        # Without a linger the worker sent about one produce request per event (31,660 for
        # 24,734 events in a profile), and requests cost far more than messages: 20 ms took
        # it from about 0.7k to 1.3k events/s in one run, for at most 20 ms more latency.
        producer_linger=0.020,
        consumer_group_instance_id=_group_instance_id(config) if config.worker.static_membership else None,
        table_standby_replicas=config.worker.standby_replicas,
        broker_session_timeout=config.worker.session_timeout / 1_000_000,
        # The members left learn of a rebalance on their next heartbeat: at faust's 3 s, a
        # dead worker's partitions waited up to 3 s more than the session. A tenth of the
        # session (at most those 3 s: the default 60 s session is unchanged).
        broker_heartbeat_interval=min(3.0, config.worker.session_timeout / 10_000_000),
        autodiscover=False,
        monitor=None if config.worker.faust_metrics else QuietMonitor(),
    )
    app.transport = Transport(app.conf.broker_consumer, app)  # faust's, delivering without 4 tasks a message
    return app


class WorkerTables(NamedTuple):
    customers: Any
    clocks: Any
    erasures: Any

    def send_changelog(self, table: str, partition: int, key: bytes, value: bytes | None) -> None:
        """A changelog record of `table` sent again (faust's way: a table write's record)."""
        chosen = {CUSTOMERS_TABLE: self.customers, ERASURES_TABLE: self.erasures}[table]
        chosen.send_changelog(partition, key, value)


def _declare_tables(app: faust.App, config: Config) -> WorkerTables:
    rocksdb = config.worker.store == "rocksdb"

    def bytes_table(name: str) -> Any:
        # bytes in and out: the worker encodes states itself (msgpack), faust stores raw bytes
        return app.Table(
            name,
            partitions=config.kafka.partitions,
            key_type=bytes,
            value_type=bytes,
            options=_rocksdb_options() if rocksdb else None,
        )

    customers = bytes_table(CUSTOMERS_TABLE)
    restore_resolving(customers, restored_customer)
    clocks = bytes_table(CLOCKS_TABLE)
    restore_resolving(clocks, restored_clocks_entry)
    return WorkerTables(customers, clocks, bytes_table(ERASURES_TABLE))


def _transactions(
    app: faust.App, config: Config, worker: Worker, protocol: CommitProtocol, tables: WorkerTables
) -> Transactions:
    """Exactly-once mode: a transaction per owned orders partition, committed on a timer, at a
    revocation and at shutdown."""
    read_committed_only(app.consumer)
    topics = config.topics
    app_id = config.worker.app_id
    transactions = Transactions(
        app,
        protocol,
        (topics.orders, topics.ticks),
        open_producer=lambda number: transactional_producer(config, f"{app_id}-{topics.orders}-{number}"),
        committed_offsets=lambda tps: group_offsets(config, app_id, tps),
        give_up=partial(_give_up, worker, tables),
        take_back_after=config.worker.session_timeout / 1_000_000,
    )
    install_transaction_faults(transactions)
    logging.getLogger("aiokafka.producer.sender").addFilter(_not_transaction_verification)

    interval = config.worker.transaction_interval / 1_000_000

    async def commit_transactions() -> None:
        # a commit every interval, counted from the start of the last one (a subscriber
        # waits for the commit after a transition's); one that took longer is followed at once
        while not app.should_stop:
            started = time.monotonic()
            await transactions.commit()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    app.task(commit_transactions)

    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        await transactions.close({tp.partition for tp in revoked if tp.topic == topics.orders})

    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        numbers = {tp.partition for tp in assigned if tp.topic == topics.orders}
        transactions.assigned(numbers)
        # fenced at once: a previous owner still alive can commit no more after this
        await transactions.ready(numbers)

    async def on_shutdown(sender: Any, **kwargs: Any) -> None:
        await transactions.stop()

    signals: Any = app  # mode's signal types do not take coroutine receivers
    signals.on_partitions_revoked.connect(on_revoked)
    signals.on_partitions_assigned.connect(on_assigned)
    signals.on_before_shutdown.connect(on_shutdown)
    return transactions


def _give_up(worker: Worker, tables: WorkerTables, number: int) -> None:
    """A partition fenced: the worker forgets it, and its tables are restored whole if it
    comes back (what another worker wrote meanwhile may sit before offsets noted here)."""
    worker.give_up(number)
    for table in tables:
        restore_whole_next_time(table, number)


def _outputs(
    app: faust.App,
    worker: Worker,
    protocol: CommitProtocol,
    customers: Any,
    transactions: Transactions | None,
) -> Callable[[], Any]:
    """The way out for the worker's outputs: batches handed to aiokafka in the order they were
    made, after the store is written, each confirmed before the next commit (in exactly-once
    mode, those readers outside the engine see: into their partition's transaction); returns
    the agent's `send_outputs`."""
    protocol.install_flush(app.producer)

    def note_persisted(last: int, ack: asyncio.Future[Any]) -> None:
        # what faust's table does for its own changelog writes: the local store remembers
        # the changelog offset it holds, and a restart restores only what came after
        if not ack.cancelled() and ack.exception() is None:
            batch = ack.result()  # the offset of the batch's first record
            if transactions is not None and batch.partition in transactions.given_up:
                return  # written before the fence was known: others' records may precede it
            customers.data.set_persisted_offset(TP(batch.topic, batch.partition), batch.offset + last)

    def on_handed(topic: str, ack: asyncio.Future[Any], records: int) -> None:
        protocol.confirm_before_commit(topic, ack)  # faust's commit waits for it
        if topic == worker.customers_changelog:
            ack.add_done_callback(partial(note_persisted, records - 1))

    batches = Batches(aiokafka_producer(app.producer), on_handed, before_hand_over=worker.flush_store)
    protocol.before_flush = lambda: protocol.hand_over(batches.hand_over_all())

    async def hand_over_batches() -> None:
        await protocol.hand_over(batches.hand_over_all())

    app.timer(interval=LINGER_SECONDS, name="hand_over_batches")(hand_over_batches)

    async def send_outputs() -> None:
        await protocol.hand_over(batches.send(worker.drain()))

    if transactions is None:
        return send_outputs
    outside = worker.outputs.outside_transactions

    async def send_outputs_transacted() -> None:
        outputs = worker.drain()
        if not outputs:
            return
        await protocol.hand_over(batches.send([o for o in outputs if o.topic in outside]))
        by_source: dict[int, list[Any]] = {}
        for output in outputs:
            if output.topic not in outside:
                by_source.setdefault(output.source, []).append(output)
        for source, transacted in by_source.items():
            await transactions.send(source, transacted)

    return send_outputs_transacted


async def _quiet_client_logs() -> None:
    # aiokafka builds a debug log record for every message it sends: a tenth of the worker's
    # time went there.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.getLogger().level))


async def _dump_tasks_on_sigusr2() -> None:
    """`kill -USR2 <pid>` logs where every task of the worker waits: what a stalled worker is
    stuck on, without stopping it."""

    def awaiting(task: asyncio.Task[Any]) -> str:
        # a suspended task's stack is its outermost frame only: follow what each coroutine awaits
        steps: list[str] = []
        step: Any = task.get_coro()
        while step is not None and len(steps) < 30:
            frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None)
            if frame is None:
                steps.append(type(step).__name__)
                break
            steps.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
        return " -> ".join(steps)

    def dump() -> None:
        for task in asyncio.all_tasks():
            log.warning("task %s", awaiting(task))

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump)


def _not_transaction_verification(record: logging.LogRecord) -> bool:
    """Leave out aiokafka's warning of each retry of a send that Kafka 4 refused with
    NOT_ENOUGH_REPLICAS: how it says that the previous transaction is still being completed
    (aiokafka#1172), several times a second in exactly-once mode. A real shortage of replicas
    shows all the same: its sends fail after their retries, and the worker stops (exit 74)."""
    return "NotEnoughReplicasError" not in record.getMessage()


def _process(worker: Worker, message: Any) -> int | None:
    return worker.on_message(message.topic, message.partition, message.offset, message.key, message.value)


def _agent(
    app: faust.App,
    config: Config,
    worker: Worker,
    protocol: CommitProtocol,
    scope: AtLeastOnce | Transactions,
    buffer: DrainingBuffer,
    send_outputs: Callable[[], Any],
    process: Process,
    metrics: WorkerMetrics,
) -> None:
    """The agent over orders and ticks: one message processed, its outputs handed over, then
    the next (whose request acks this one: commit protocol, invariant 2); in exactly-once
    mode each message in its partition's transaction, whole (invariant 12)."""
    source = app.topic(
        config.topics.orders, config.topics.ticks, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(source, name="lifecycle")
    async def lifecycle(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            async with scope.handling(message) as handling:
                if not handling.go:  # exactly-once: committed already, or the partition given up
                    protocol.refuse(message)
                    continue
                try:
                    with metrics.processing.time():
                        reread_from = process(message)
                except Exception:
                    stop_unprocessed(message)
                if reread_from is not None:
                    # not processed: its ack must not count, and the partition is read again
                    # from the first offset missing. seek_wait runs in the consumer's thread
                    # (faust's plain `seek` calls aiokafka from this one, and the fetcher never
                    # woke up: a stall)
                    protocol.refuse(message)
                    try:
                        await app.consumer.seek_wait({message.tp: reread_from})
                    except Exception as error:  # the next message past the hole asks again
                        log.warning(
                            "orders partition %d: seek to %d failed: %r",
                            message.partition,
                            reread_from,
                            error,
                        )
                    continue
                try:
                    await send_outputs()
                except Exception:  # Kafka's own refusals stop the process in `hand_over`
                    stop_unprocessed(message)
                while worker.catching_up(message.partition):
                    # a tick far ahead of the clock: deadlines a step at a time, with heartbeats,
                    # health checks and the send buffer running in between
                    await asyncio.sleep(0)
                    await buffer.wait_until_ebb()
                    try:
                        with metrics.processing.time():
                            worker.catch_up(message.partition)
                        await send_outputs()
                    except Exception:
                        stop_unprocessed(message)
                handling.done(message.topic, message.offset)


def _group_instance_id(config: Config) -> str:
    """This worker's static member id: its host and web address.

    The coordinator hands a returning static member its previous assignment, whose metadata
    holds the previous worker's web URL, and faust's assignor asserts that URL is its own (a
    worker back on another port died in the coordinator and sat idle). The same id then means
    the same URL; the host name tells apart pods that all listen on 0.0.0.0.
    """
    worker = config.worker
    return f"{worker.app_id}-{socket.gethostname()}-{worker.web_host}-{worker.web_port}"
