"""The wall clock, read by the drivers only: the core takes time as a parameter."""

from __future__ import annotations

import time


def wall_clock_us() -> int:
    """Now, in epoch microseconds."""
    return time.time_ns() // 1000
