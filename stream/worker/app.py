"""The Faust wiring of the live worker: topics, tables, the agent, the tick timer.

Everything the worker decides is in `runtime.Worker` (and the core below it); this module
only connects it to faust-streaming.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, NoReturn

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import TP

from ..config import Config
from ..kafka.batches import Batches, HandOverFailed
from ..kafka.client import faust_broker_url, faust_credentials
from ..kafka.consumer import Transport
from . import acks, send_buffer, standby
from .metrics import WorkerMetrics
from .monitor import QuietMonitor
from .runtime import Worker
from .state import CLOCKS_TABLE, CUSTOMERS_TABLE, ERASURES_TABLE, restored_clocks_entry, restored_customer
from .tables import restore_resolving
from .watchdog import StallWatch, kafka_partition_state

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
    raw = {"key_serializer": "raw", "value_serializer": "raw"}

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
    erasures = bytes_table(ERASURES_TABLE)
    tables = {CUSTOMERS_TABLE: customers, ERASURES_TABLE: erasures}
    source = app.topic(config.topics.orders, config.topics.ticks, **raw)

    def committed_offset(topic: str, partition: int) -> int | None:
        # faust keeps what it committed (or found committed at assignment) per partition
        committed: int | None = app.consumer._committed_offset.get(TP(topic, partition))
        return committed

    metrics = WorkerMetrics()

    def owned_partitions() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == config.topics.orders}

    worker = Worker(
        config,
        customers,
        clocks,
        erasures,
        committed_offset=committed_offset,
        owned_partitions=owned_partitions,
        resend_changelog=lambda table, n, key, value: tables[table].send_changelog(n, key, value),
        metrics=metrics,
    )

    buffer = send_buffer.install(app.producer)

    def processed_through(partition: int) -> int | None:
        runtime = worker.partitions.get(partition)
        return None if runtime is None else runtime.last_order_offset

    refusals = acks.install(app, config.topics.orders, processed_through)
    _skip_fetched_once(app.consumer, config.topics.orders, _fault_orders("LIFECYCLE_FAULT_SKIP_FETCHED"))

    customers_changelog = worker.customers_changelog

    def note_persisted(last: int, ack: asyncio.Future[Any]) -> None:
        # what faust's table does for its own changelog writes: the local store remembers
        # the changelog offset it holds, and a restart restores only what came after
        if not ack.cancelled() and ack.exception() is None:
            batch = ack.result()  # the offset of the batch's first record
            tp = TP(batch.topic, batch.partition)
            customers.data.set_persisted_offset(tp, batch.offset + last)

    def on_handed(topic: str, ack: asyncio.Future[Any], records: int) -> None:
        buffer.confirm_before_commit(topic, ack)  # faust's commit waits for it
        if topic == customers_changelog:
            ack.add_done_callback(partial(note_persisted, records - 1))

    # the customers' local store is written before any output leaves (TableCustomers)
    batches = Batches(app.producer._ensure_producer, on_handed, before_hand_over=worker.flush_store)

    async def hand_over(step: Awaitable[None]) -> None:
        try:
            await step
        except HandOverFailed as failed:
            send_buffer.stop_before_commit([(failed.topic, failed.error)])

    buffer.before_flush = lambda: hand_over(batches.hand_over_all())

    @app.timer(interval=LINGER_SECONDS)
    async def hand_over_batches() -> None:
        await hand_over(batches.hand_over_all())

    async def send_outputs() -> None:
        """Hand the outputs (customer changelog records among them) to aiokafka in the order
        they were made; faust's commit waits for every one to be acked (`send_buffer`)."""
        await hand_over(batches.send(worker.drain()))

    def process(message: Any) -> int | None:
        return worker.on_message(message.topic, message.partition, message.offset, message.key, message.value)

    process = _with_injected_faults(process, refusals)

    @app.agent(source, name="lifecycle")
    async def lifecycle(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                with metrics.processing.time():
                    reread_from = process(message)
            except Exception:
                _stop_unprocessed(message)
            if reread_from is not None:
                # not processed: its ack must not count, and the partition is read again
                # from the first offset missing. seek_wait runs in the consumer's thread
                # (faust's plain `seek` calls aiokafka from this one, and the fetcher never
                # woke up: a stall)
                refusals.refuse(message)
                try:
                    await app.consumer.seek_wait({message.tp: reread_from})
                except Exception as error:  # the next message past the hole asks again
                    log.warning(
                        "orders partition %d: seek to %d failed: %r", message.partition, reread_from, error
                    )
                continue
            await send_outputs()
            while worker.catching_up(message.partition):
                # a tick far ahead of the clock: deadlines a step at a time, with heartbeats,
                # health checks and the send buffer running in between
                await asyncio.sleep(0)
                await buffer.wait_until_ebb()
                try:
                    with metrics.processing.time():
                        worker.catch_up(message.partition)
                except Exception:
                    _stop_unprocessed(message)
                await send_outputs()

    stall_watch = StallWatch(app)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        numbers = {tp.partition for tp in revoked if tp.topic == config.topics.orders}
        worker.let_go(numbers)
        stall_watch.forget(numbers)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        worker.regain({tp.partition for tp in assigned if tp.topic == config.topics.orders})

    def fetch_position(number: int) -> int | None:
        """aiokafka's fetch position in an orders partition (None: not known)."""
        try:
            state = kafka_partition_state(app, TP(config.topics.orders, number))
            return None if state is None or state.awaiting_reset else state._position
        except Exception:  # no consumer or assignment at this instant: look again next tick
            return None

    async def resume_from_state() -> None:
        """Take up owned partitions with nothing to read yet, and read again those whose
        committed offset is past what their state records as processed (`Worker.rewinds`) or
        whose fetch position stays past it (`Worker.fetched_past`): no message would come to
        show the hole."""
        owned = owned_partitions()
        worker.take_up(owned)
        await send_outputs()
        rewinds = worker.rewinds(owned) | worker.fetched_past(owned, fetch_position)
        if not rewinds:
            return
        try:
            await app.consumer.seek_wait({TP(config.topics.orders, n): o for n, o in rewinds.items()})
        except Exception as error:  # a rebalance in between: the next owner checks again
            log.warning("orders partitions %s: seek failed: %r", sorted(rewinds), error)

    ticks = app.topic(config.topics.ticks, **raw)

    @app.timer(interval=config.time.tick_interval / 1_000_000)
    async def send_ticks() -> None:
        ready = _ready(app)
        metrics.ready.set(1 if ready else 0)
        if ready:
            await resume_from_state()
        metrics.stalled_partitions.set(stall_watch.stalled())
        if not app.rebalancing:  # in one, faust closes copies' stores before it forgets them
            metrics.set_standby_lags(standby.lags(app))
        for tp in app.assignor.assigned_actives():
            if tp.topic != config.topics.orders:
                continue
            lag = _lag(app, worker, tp)
            if lag is not None:
                metrics.consumer_lag.labels(str(tp.partition)).set(lag)
            runtime = worker.partitions.get(tp.partition)
            stall_watch.observe(tp, runtime.last_order_offset if runtime else None, lag)
            if lag == 0 and config.time.ticks:
                ticks.send_soon(key=None, value=worker.tick_value(), partition=tp.partition)

    @app.task
    async def quiet_client_logs() -> None:
        # aiokafka builds a debug log record for every message it sends: a tenth of the
        # worker's time went there.
        logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.getLogger().level))

    _add_health_pages(app)
    if config.worker.faust_metrics:
        # faust's own metrics (messages, commits, rebalances, offsets) join ours on /metrics
        setup_prometheus_sensors(app, registry=metrics.registry, name_prefix="faust")
    else:
        _add_metrics_page(app, metrics.registry)
    app.lifecycle_worker = worker  # type: ignore[attr-defined]
    return app, worker


# sysexits' EX_SOFTWARE: handling a message raised; stopped before its offset is committed
EXIT_PROCESSING_FAILED = 70


def _stop_unprocessed(message: Any) -> NoReturn:
    """End the process: handling `message` raised, half done.

    faust would log the error, restart the agent and go on with the next message, and the
    commit would then move past this one: its order lost without a trace (the soak found
    three). Stopping before any commit leaves it to be handled again when the worker is
    back: a bug fixed, or a fault gone, it is processed; a message that always fails keeps
    the worker from going past it, in plain sight (a supervisor restarting it, and this log).
    """
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


def _with_injected_faults(
    process: Callable[[Any], int | None], refusals: acks.Refusals
) -> Callable[[Any], int | None]:
    """`process`, or, for tests that set LIFECYCLE_FAULT_DROP_ORDERS or _FAIL_ORDERS, `process`
    behind the faults they name: installed once here, not a branch on every message."""
    dropped_once = _fault_orders("LIFECYCLE_FAULT_DROP_ORDERS")
    failing = _fault_orders("LIFECYCLE_FAULT_FAIL_ORDERS")
    if not dropped_once and not failing:
        return process

    def with_faults(message: Any) -> int | None:
        where = (message.partition, message.offset)
        if where in dropped_once:
            dropped_once.discard(where)
            refusals.refuse(message)  # as if faust had lost it on its way
            return None
        if where in failing:
            raise RuntimeError("fault injected for tests (LIFECYCLE_FAULT_FAIL_ORDERS)")
        return process(message)

    return with_faults


def _fault_orders(variable: str) -> set[tuple[int, int]]:
    """Fault injection for tests: LIFECYCLE_FAULT_DROP_ORDERS="0:5,1:7" makes the worker
    ignore those (partition, offset) messages of the orders topic once, the way faust loses a
    message around a rebalance (docs/field-notes.md); LIFECYCLE_FAULT_FAIL_ORDERS makes
    handling them raise."""
    spec = os.environ.get(variable, "")
    dropped = set()
    for item in filter(None, spec.split(",")):
        partition, _, offset = item.partition(":")
        dropped.add((int(partition), int(offset)))
    return dropped


def _skip_fetched_once(consumer: Any, topic: str, skipped: set[tuple[int, int]]) -> None:
    """Fault injection for tests: LIFECYCLE_FAULT_SKIP_FETCHED="0:40,0:41" makes faust's
    consumer pass over those (partition, offset) messages of `topic` once, as fetched. Its
    read offset then jumps, as to a message fetched before a rebalance, and it records the
    offsets passed over as a gap (docs/field-notes.md, "faust's commits crawled")."""
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


def _group_instance_id(config: Config) -> str:
    """This worker's static member id: its host and web address.

    The coordinator hands a returning static member its previous assignment, whose metadata
    holds the previous worker's web URL, and faust's assignor asserts that URL is its own (a
    worker back on another port died in the coordinator and sat idle). The same id then means
    the same URL; the host name tells apart pods that all listen on 0.0.0.0.
    """
    worker = config.worker
    return f"{worker.app_id}-{socket.gethostname()}-{worker.web_host}-{worker.web_port}"


def _lag(app: faust.App, worker: Worker, tp: TP) -> int | None:
    """Messages of this orders partition not yet processed; None while unknown."""
    highwater = app.consumer.highwater(tp)
    if highwater is None:
        return None
    runtime = worker.partitions.get(tp.partition)
    if runtime is not None and runtime.last_order_offset is not None:
        return max(0, highwater - runtime.last_order_offset - 1)
    committed = app.consumer._committed_offset.get(tp)
    if highwater == 0:
        return 0
    return None if committed is None else max(0, highwater - committed)


def _ready(app: faust.App) -> bool:
    """Table recovery complete and partitions owned: what /readyz reports."""
    recovery = app.tables.recovery
    return bool(recovery.completed.is_set() and not app.rebalancing and app.assignor.assigned_actives())


def _add_metrics_page(app: faust.App, registry: Any) -> None:
    from aiohttp.web import Response as HttpResponse
    from faust.web import Request, Response, View
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # a header, not aiohttp's content_type, which refuses the charset it carries
            page = HttpResponse(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
            return page  # type: ignore[return-value]


def _add_health_pages(app: faust.App) -> None:
    from faust.web import Request, Response, View

    @app.page("/healthz")
    class Healthz(View):  # the process is up and its event loop answers
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Readyz(View):  # 503 until recovery is complete and the worker owns partitions
        async def get(self, request: Request) -> Response:
            if _ready(app):
                return self.json({"status": "ready"})
            return self.json({"status": "recovering"}, status=503)
