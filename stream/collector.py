"""When Python's cyclic garbage collector runs while a driver loads state in bulk."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def few_collections() -> Iterator[None]:
    """Run the cyclic garbage collector rarely while state is built up in bulk.

    A replay keeps millions of objects alive, and a worker taking up a partition decodes
    every stored customer of it; neither makes reference cycles. At the default thresholds
    the collector keeps re-scanning what was just made: a quarter of a replay's time, and
    half of taking up 500k customers. On the way out what is alive is frozen (left to
    reference counting alone) before the thresholds come back, or the next allocation would
    start a full scan of it (1.5 s after a 500k-event replay). Frozen objects that later
    become cyclic garbage are never collected; a worker freezes once per take-up, so what it
    could keep so is what was in flight at a few instants.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(*thresholds)
