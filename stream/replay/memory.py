"""A memory budget for replay and rebuild (`--memory`): the partitions in passes that fit.

A replay or a rebuild holds every customer of the partitions it replays (and, for a replay,
the lines it sorts into time order); partitions are independent, so they can be replayed in
groups, one group's process after another (at most `--jobs` at once), each holding its
share, with outputs merged as `--jobs` merges them: the same bytes as one pass. How many
groups a budget needs is estimated before the run from the input's size: what the
benchmarks measured per byte of JSON lines and per event of the orders topic.
"""

from __future__ import annotations

import math
import os
import re
from typing import NamedTuple

# measured (2026-12-05, `make bench`): a replay of a 352 MB JSONL history (988k events) peaked
# at 976 MiB, 1,059 MiB with the segment preset: about 3 bytes held per byte of input
MEMORY_PER_INPUT_BYTE = 3.2
# a rebuild holds about as much per event read from the topic (events ~ 360 bytes of JSON)
MEMORY_PER_EVENT = 1_150
# what a process holds before any customer: the interpreter, the modules, buffers
PROCESS_BASE = 120 * 2**20
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_memory(text: str) -> int:
    """Bytes of "2G", "512M", "1.5GiB", "3000000"; a ValueError that says what is expected."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected an amount of memory like 2G or 512M, got `{text}`")
    amount = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if amount < 1:
        raise ValueError(f"expected an amount of memory above zero, got `{text}`")
    return int(amount)


def default_budget() -> int:
    """Half of the machine's memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


class Passes(NamedTuple):
    """Groups of partitions to replay one after another (`groups` of them, `jobs` at once),
    and whether the budget is met by the estimate."""

    groups: int
    estimate: int  # bytes, all partitions in one process
    per_process: int  # bytes, estimated, for one group's process
    met: bool


def passes(estimate: int, budget: int, jobs: int, partitions: int) -> Passes:
    """The fewest groups (at least `jobs`, at most `partitions`) whose `jobs` processes at
    once fit in `budget`, given `estimate`, the data one process would hold for all."""
    share = budget / jobs - PROCESS_BASE  # what one process may hold beyond its base
    # a budget below the processes' base: as fine as the partitions go
    groups = partitions if share <= 0 else max(jobs, math.ceil(estimate / share))
    groups = min(max(groups, 1), partitions)
    per_process = PROCESS_BASE + estimate // groups
    return Passes(groups, estimate, per_process, per_process * jobs <= budget)


def input_estimate(paths: list[str], input_format: str) -> int:
    """What one process would hold replaying these files (bytes, estimated from their size):
    gzip is about a ninth of its JSON lines, a CSV row about half a JSON event's bytes."""
    total = 0.0
    for path in paths:
        size = os.path.getsize(path) * MEMORY_PER_INPUT_BYTE
        total += size * (9 if path.endswith(".gz") else 1) * (1 if input_format == "jsonl" else 2)
    return int(total)


def shown(amount: int) -> str:
    return f"{amount / 2**30:.1f} GiB" if amount >= 2**30 else f"{amount / 2**20:.0f} MiB"


def plan_note(plan: Passes, budget: int, jobs: int, doing: str) -> str | None:
    """What to tell on stderr when a budget changes how the work runs, or cannot be met."""
    if plan.groups <= jobs and plan.met:
        return None
    note = (
        f"{doing} in {plan.groups} groups of partitions, {jobs} at a time, to stay within "
        f"--memory {shown(budget)} (estimated {shown(PROCESS_BASE + plan.estimate)} in one process, "
        f"{shown(plan.per_process)} each)"
    )
    if not plan.met:
        note += (
            "; the budget cannot be met with one partition a group: more partitions "
            "(kafka.partitions, which must match the orders topic)" + (" or fewer --jobs" if jobs > 1 else "")
        )
    return note
