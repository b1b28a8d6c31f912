"""Prometheus metrics of the live worker, served on /metrics beside faust's own.

No label carries a customer id: labels are event types, outcomes, transition names,
states, partitions and rejection kinds, all small fixed sets.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400, 7 * 86400)
_PROCESSING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)
_DAY = 86400.0
_SECOND_PURCHASE_BUCKETS = tuple(d * _DAY for d in (1, 3, 7, 14, 21, 30, 45, 60, 90, 180, 365))


def buyers_label(order_count: int) -> str | None:
    """The `orders` label of `lifecycle_buyers` for a customer with this many counted orders."""
    if order_count <= 0:
        return None
    return "one" if order_count == 1 else "two_or_more"


class WorkerMetrics:
    """The engine's own metrics, registered once per registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.events = Counter(
            "lifecycle_events",
            "Order events handled, by type and outcome (applied, late, duplicate, erased, rejected).",
            ["type", "outcome"],
            registry=registry,
        )
        self.transitions = Counter(
            "lifecycle_transitions", "Transitions emitted, by name.", ["transition"], registry=registry
        )
        self.customers = Gauge(
            "lifecycle_customers",
            "Customers known to this worker, by lifecycle state.",
            ["state"],
            registry=registry,
        )
        self.buyers = Gauge(
            "lifecycle_buyers",
            "Customers of this worker's partitions with one counted order, and with two or more "
            "(the repeat purchase rate is the second over both).",
            ["orders"],
            registry=registry,
        )
        self.one_timer_outcomes = Counter(
            "lifecycle_one_timer_outcomes",
            "One-timers who bought a second time within the window (converted) or whose window "
            "closed without it (lapsed): the second-purchase conversion, live.",
            ["outcome"],
            registry=registry,
        )
        self.event_time_lag = Histogram(
            "lifecycle_event_time_lag_seconds",
            "Wall clock minus the event's occurred_at, when it is handled (rejects excepted).",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        self.processing = Histogram(
            "lifecycle_processing_seconds",
            "Time to handle one message of the orders or ticks topic.",
            buckets=_PROCESSING_BUCKETS,
            registry=registry,
        )
        self.partition_clock = Gauge(
            "lifecycle_partition_clock_seconds",
            "Each partition's clock, as Unix time.",
            ["partition"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "lifecycle_dead_letters",
            "Messages sent to the dead-letter topic, by kind of problem.",
            ["reason"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "lifecycle_consumer_lag",
            "Messages of the orders topic not yet processed, per partition owned by this worker.",
            ["partition"],
            registry=registry,
        )
        self.second_purchase = Histogram(
            "lifecycle_second_purchase_seconds",
            "Time from a customer's "
            "first to second counted order, at the second-purchase "
            "conversion (became_repeat).",
            buckets=_SECOND_PURCHASE_BUCKETS,
            registry=registry,
        )
        self.orders_folded = Counter(
            "lifecycle_orders_folded",
            "Orders folded into their customer's totals: customers past limits.orders_kept orders.",
            registry=registry,
        )
        self.rerouted = Counter(
            "lifecycle_rerouted_events",
            "Events that arrived on another partition than their customer's and were re-sent there.",
            registry=registry,
        )
        self.customer_reads = Counter(
            "lifecycle_customer_reads",
            "Customers read, from memory (kept decoded, worker.decoded_customers) or from the "
            "store: the share from memory says whether that setting is large enough.",
            ["source"],
            registry=registry,
        )
        self.resent = Counter(
            "lifecycle_resent_transitions",
            "Transitions sent again when a partition "
            "was taken up, because their first send may have been lost.",
            registry=registry,
        )
        self.skipped_orders = Counter(
            "lifecycle_skipped_orders",
            "Orders offsets a partition's messages jumped over: messages this worker never "
            "saw. Expected only if producers of the orders topic use transactions.",
            ["partition"],
            registry=registry,
        )
        self.segment_members = Gauge(
            "lifecycle_segment_members",
            "Customers of this worker's partitions in each segment.",
            ["segment"],
            registry=registry,
        )
        self.class_members = Gauge(
            "lifecycle_class_members",
            "Customers of this worker's partitions in each class.",
            ["class"],
            registry=registry,
        )
        self.segment_changes = Counter(
            "lifecycle_segment_changes",
            "Segment changes emitted, by segment and change (entered_segment, left_segment).",
            ["segment", "change"],
            registry=registry,
        )
        self.class_changes = Counter(
            "lifecycle_class_changes",
            "Class changes emitted, by direction (up, down).",
            ["direction"],
            registry=registry,
        )
        self.experiment_exposures = Counter(
            "lifecycle_experiment_exposures",
            "Changes emitted that are exposures of an experiment, by experiment and group "
            "(treatment, holdout); a held-out change is kept off its per-name topic.",
            ["experiment", "group"],
            registry=registry,
        )
        self.trigger_firings = Counter(
            "lifecycle_trigger_firings",
            "Trigger firings emitted, by trigger (replayed ones and held-out ones included).",
            ["trigger"],
            registry=registry,
        )
        self.trigger_pending = Gauge(
            "lifecycle_trigger_pending",
            "Firings armed and not yet due, in each partition this worker owns.",
            ["partition"],
            registry=registry,
        )
        self.experiment_goals = Counter(
            "lifecycle_experiment_goals",
            "Customers who reached an experiment's goal within its window after their first "
            "exposure, by experiment and group, counted at the instant the goal is reached.",
            ["experiment", "group"],
            registry=registry,
        )
        self.rereads = Counter(
            "lifecycle_orders_rereads",
            "Times an orders partition was read again because a message arrived past offsets "
            "not yet processed (faust dropped one on its way, around a rebalance).",
            ["partition"],
            registry=registry,
        )
        self.late_share_warnings = Counter(
            "lifecycle_late_share_warnings",
            "Times a partition's share of late events, per 1,000 events, was above time.late_share_warning.",
            ["partition"],
            registry=registry,
        )
        self.stalled_partitions = Gauge(
            "lifecycle_stalled_partitions",
            "Owned orders partitions with messages to process and none processed for 30 s.",
            registry=registry,
        )
        self.ready = Gauge(
            "lifecycle_ready",
            "1 when table recovery is complete and the worker owns partitions, else 0.",
            registry=registry,
        )
        self.standby_lag = Gauge(
            "lifecycle_standby_lag",
            "Changelog records not yet in this worker's store, per standby copy (a table "
            "partition of another worker's, kept here for fail-over): what taking the "
            "partition over would still have to read.",
            ["table", "partition"],
            registry=registry,
        )
        self._standby_copies: set[tuple[str, str]] = set()
        self._children: dict[tuple[Counter | Gauge, tuple[str, ...]], Any] = {}

    def set_standby_lags(self, lags: dict[tuple[str, int], int]) -> None:
        """The standby copies' lags now; copies no longer kept here drop out."""
        copies = {(table, str(partition)): lag for (table, partition), lag in lags.items()}
        for gone in self._standby_copies - copies.keys():
            self.standby_lag.remove(*gone)
        for copy, lag in copies.items():
            self.standby_lag.labels(*copy).set(lag)
        self._standby_copies = set(copies)

    def labelled(self, metric: Counter | Gauge, *values: str) -> Any:
        """`metric.labels(*values)`, kept: prometheus_client checks and locks on every call,
        and the worker asks for the same few children for every event. Not for children that
        are removed (a partition's)."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child
