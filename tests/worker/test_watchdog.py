"""The stall watchdog: a partition with lag and no progress is reported once, and the report
never raises (it runs in the worker's timer, where an exception stops the worker)."""

from __future__ import annotations

import logging

from faust.types import TP

from stream.worker.watchdog import STALL_AFTER_S, StallWatch

ORDERS = TP("orders", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_partition_with_lag_and_no_progress_is_reported_once_and_then_when_it_moves(caplog):
    clock = Clock()
    watch = StallWatch(app=object(), book=None, now=clock)  # an app with nothing to describe
    watch.observe(ORDERS, 41, lag=5)
    clock.now = STALL_AFTER_S - 1
    watch.observe(ORDERS, 41, lag=5)
    assert watch.stalled() == 0
    clock.now = STALL_AFTER_S + 1
    with caplog.at_level(logging.WARNING):
        watch.observe(ORDERS, 41, lag=5)
        watch.observe(ORDERS, 41, lag=5)
    stalls = [r.getMessage() for r in caplog.records if "none processed" in r.getMessage()]
    assert len(stalls) == 1 and stalls[0].startswith("orders partition 1: 5 message(s) to process")
    assert "(no details:" in stalls[0]
    assert watch.stalled() == 1
    watch.observe(ORDERS, 42, lag=4)
    assert watch.stalled() == 0
    assert any("moves again" in r.getMessage() for r in caplog.records)


def test_a_partition_without_lag_is_never_stalled():
    clock = Clock()
    watch = StallWatch(app=object(), book=None, now=clock)
    for step in range(5):
        clock.now = step * STALL_AFTER_S
        watch.observe(ORDERS, 41, lag=0)
    assert watch.stalled() == 0
