"""How far behind the standby copies are (stream/worker/standby.py), and the metric that shows
it. On a real broker: tests/kafka/test_worker.py waits on the metric before a take-over."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry

from stream.worker import standby
from stream.worker.metrics import WorkerMetrics


class Table:
    def __init__(self, name: str, persisted: dict[TP, int]) -> None:
        self.name = name
        self.persisted = persisted

    def persisted_offset(self, tp: TP) -> int | None:
        return self.persisted.get(tp)


def app_with(standby_tps: set[TP], tables: dict[TP, Table], highwaters: dict[TP, int]) -> Any:
    recovery = SimpleNamespace(standby_tps=standby_tps, tp_to_table=tables)
    return SimpleNamespace(
        tables=SimpleNamespace(recovery=recovery), consumer=SimpleNamespace(highwater=highwaters.get)
    )


def test_a_copy_lags_by_the_records_after_the_offset_its_store_noted_as_persisted():
    applied, untouched, unknown = TP("a-customers-changelog", 1), TP("a-customers-changelog", 3), TP("x", 5)
    customers = Table("customers", {applied: 41})
    app = app_with(
        {applied, untouched, unknown},
        {applied: customers, untouched: customers, unknown: customers},
        {applied: 100, untouched: 7},  # the end offset: the next record's
    )
    assert standby.lags(app) == {("customers", 1): 58, ("customers", 3): 7}


def test_the_metric_drops_copies_no_longer_kept():
    metrics = WorkerMetrics(CollectorRegistry())

    def samples() -> dict[tuple[str, str], float]:
        [family] = [f for f in metrics.registry.collect() if f.name == "lifecycle_standby_lag"]
        return {(s.labels["table"], s.labels["partition"]): s.value for s in family.samples}

    metrics.set_standby_lags({("customers", 1): 58, ("partition-clocks", 1): 0})
    assert samples() == {("customers", "1"): 58, ("partition-clocks", "1"): 0}
    metrics.set_standby_lags({("customers", 2): 3})
    assert samples() == {("customers", "2"): 3}
