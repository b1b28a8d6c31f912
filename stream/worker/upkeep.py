"""The worker's timer: ticks for idle partitions, partitions taken up and read again from
their state, and the gauges (readiness, lag, stalls, standby copies)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faust.types import TP

from ..config import Config
from . import standby
from .faust_internals.consumer import ConsumerBook
from .metrics import WorkerMetrics
from .runtime import Worker
from .watchdog import StallWatch

log = logging.getLogger(__name__)


def ready(app: Any) -> bool:
    """Table recovery complete and partitions owned: what /readyz reports."""
    recovery = app.tables.recovery
    return bool(recovery.completed.is_set() and not app.rebalancing and app.assignor.assigned_actives())


def owned_orders_partitions(app: Any, orders_topic: str) -> set[int]:
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == orders_topic}


class Upkeep:
    """What the tick timer does, each `config.time.tick_interval`."""

    def __init__(
        self,
        app: Any,
        config: Config,
        worker: Worker,
        metrics: WorkerMetrics,
        send_outputs: Callable[[], Awaitable[None]],
    ) -> None:
        self.app = app
        self.config = config
        self.worker = worker
        self.metrics = metrics
        self.send_outputs = send_outputs
        self.book = ConsumerBook(app.consumer)
        self.stall_watch = StallWatch(app, self.book)
        self.ticks = app.topic(config.topics.ticks, key_serializer="raw", value_serializer="raw")

    def install(self) -> None:
        self.app.timer(interval=self.config.time.tick_interval / 1_000_000, name="send_ticks")(self.tick)
        self.app.on_partitions_revoked.connect(self.on_revoked)
        self.app.on_partitions_assigned.connect(self.on_assigned)

    async def on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        numbers = {tp.partition for tp in revoked if tp.topic == self.config.topics.orders}
        self.worker.let_go(numbers)
        self.stall_watch.forget(numbers)

    async def on_assigned(self, sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        self.worker.regain({tp.partition for tp in assigned if tp.topic == self.config.topics.orders})

    async def tick(self) -> None:
        app, metrics, worker = self.app, self.metrics, self.worker
        is_ready = ready(app)
        metrics.ready.set(1 if is_ready else 0)
        if is_ready:
            await self.resume_from_state()
        metrics.stalled_partitions.set(self.stall_watch.stalled())
        if not app.rebalancing:  # in one, faust closes copies' stores before it forgets them
            metrics.set_standby_lags(standby.lags(app))
        for tp in app.assignor.assigned_actives():
            if tp.topic != self.config.topics.orders:
                continue
            lag = self.lag(tp)
            if lag is not None:
                metrics.consumer_lag.labels(str(tp.partition)).set(lag)
            self.stall_watch.observe(tp, worker.processed_through(tp.partition), lag)
            if lag == 0 and self.config.time.ticks:
                self.ticks.send_soon(key=None, value=worker.tick_value(), partition=tp.partition)

    async def resume_from_state(self) -> None:
        """Take up owned partitions with nothing to read yet, and read again those whose
        committed offset is past what their state records as processed (`Worker.rewinds`) or
        whose fetch position stays past it (`Worker.fetched_past`): no message would come to
        show the hole."""
        orders = self.config.topics.orders
        owned = owned_orders_partitions(self.app, orders)
        self.worker.take_up(owned)
        await self.send_outputs()
        rewinds = self.worker.rewinds(owned) | self.worker.fetched_past(
            owned, lambda n: self.book.fetch_position(TP(orders, n))
        )
        if not rewinds:
            return
        try:
            await self.app.consumer.seek_wait({TP(orders, n): o for n, o in rewinds.items()})
        except Exception as error:  # a rebalance in between: the next owner checks again
            log.warning("orders partitions %s: seek failed: %r", sorted(rewinds), error)

    def lag(self, tp: TP) -> int | None:
        """Messages of this orders partition not yet processed; None while unknown."""
        highwater: int | None = self.app.consumer.highwater(tp)
        if highwater is None:
            return None
        processed = self.worker.processed_through(tp.partition)
        if processed is not None:
            return max(0, highwater - processed - 1)
        committed = self.book.committed(tp)
        if highwater == 0:
            return 0
        return None if committed is None else max(0, highwater - committed)
