"""How far behind this worker's standby copies are: what a take-over would still read.

A standby copy is a table partition of another worker's, kept here for fail-over
(`standby_replicas`). faust follows its changelog like a recovery that never ends, in a task
of the event loop beside the agent, and it pauses the copies' fetching while its queue of
changelog records is full: under full load the orders come first and the copies fall behind
(two workers at full load in bench/worker_bench.py: 118k-120k of 194k records still to apply
when the orders ran out). Taking each record in as it was fetched, ahead of the orders, kept
the copies current but cost the two workers 15 % of their orders a second
(docs/field-notes.md), so faust's order stays, and the lag is shown
(`lifecycle_standby_lag`).
"""

from __future__ import annotations

from typing import Any


def lags(app: Any) -> dict[tuple[str, int], int]:
    """Changelog records not yet in the local store, by (table, partition) of each standby
    copy whose end offset is known: a take-over reads from the offset the store noted as
    persisted (the in-memory store notes none: a take-over reads it all)."""
    recovery = app.tables.recovery
    found: dict[tuple[str, int], int] = {}
    for tp in list(recovery.standby_tps):
        highwater = app.consumer.highwater(tp)
        table = recovery.tp_to_table.get(tp)
        if highwater is None or table is None:
            continue
        persisted = table.persisted_offset(tp)
        found[(table.name, tp.partition)] = max(0, highwater - 1 - (-1 if persisted is None else persisted))
    return found
