"""Notices an owned orders partition with lag that makes no progress, and says why it may be.

A worker that owns a partition with unprocessed orders must move through them. When one
does not for `STALL_AFTER_S`, the watchdog logs a warning with what faust and aiokafka know
of the partition (fetching active or paused, positions, offsets, the stream's buffer) and sets
`lifecycle_stalled_partitions`; it logs again when the partition moves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faust.types import TP

from .faust_internals.consumer import ConsumerBook

log = logging.getLogger(__name__)

STALL_AFTER_S = 30.0


@dataclass
class _Progress:
    offset: int | None
    since: float
    reported: bool = False


class StallWatch:
    """Called by the worker's timer for each owned orders partition and its lag."""

    def __init__(self, app: Any, book: ConsumerBook, now: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.book = book
        self.now = now
        self.progress: dict[int, _Progress] = {}

    def observe(self, tp: TP, processed_offset: int | None, lag: int | None) -> None:
        now = self.now()
        seen = self.progress.get(tp.partition)
        if seen is None or seen.offset != processed_offset or not lag:
            if seen is not None and seen.reported:
                log.warning("orders partition %d moves again (offset %s)", tp.partition, processed_offset)
            self.progress[tp.partition] = _Progress(processed_offset, now)
            return
        if seen.reported or now - seen.since < STALL_AFTER_S:
            return
        seen.reported = True
        try:
            described = self.describe(tp)
        except Exception as error:  # diagnostics only: a crash here would stop the worker
            described = f"(no details: {error!r})"
        log.warning(
            "orders partition %d: %d message(s) to process and none processed for %.0f s; %s",
            tp.partition,
            lag,
            now - seen.since,
            described,
        )

    def forget(self, partitions: set[int]) -> None:
        for number in partitions:
            self.progress.pop(number, None)

    def stalled(self) -> int:
        return sum(1 for p in self.progress.values() if p.reported)

    def describe(self, tp: TP) -> str:
        """faust's and aiokafka's view of one partition, for the log."""
        facts: dict[str, Any] = {
            "flow_control_active": self.app.flow_control.is_active(),
            "rebalancing": self.app.rebalancing,
            "producer_buffer": self.app.producer.buffer.size,
            **self.book.describe(tp),
        }
        return ", ".join(f"{key}={value}" for key, value in facts.items())
