"""Two configurations over the same history, read once: what each would have emitted.

Every input line is fed to one replay per configuration, in the same order. A change counts
as emitted as a live worker would have emitted it fresh: every change but those a change of
segment definitions makes (cause `configuration`), whatever its age today.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ..config import Config
from ..inputs.messages import InvalidEvent
from ..inputs.sources import read_inputs
from ..inputs.time_order import OrderingStats, ordered_lines
from ..lifecycle.instants import iso_week
from ..lifecycle.transitions import Change
from .driver import Replay
from .run import ReplayError, ReplayOptions


@dataclass
class Emitted:
    """What one configuration emitted: changes by kind (`Change.exposure_name`: a transition's
    name, `entered_segment:<s>`, `left_segment:<s>`, `class_changed:<class>`) and ISO week of
    `occurred_at`, and the customers who received each kind."""

    by_week: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    customers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def note(self, changes: list[Change]) -> None:
        for change in changes:
            if getattr(change, "cause", None) == "configuration":
                continue
            kind = change.exposure_name()
            self.by_week[kind][iso_week(change.occurred_at)] += 1
            self.customers[kind].add(change.customer_id)


@dataclass
class Side:
    config: Config
    replay: Replay
    emitted: Emitted


def what_if(options: ReplayOptions, configs: tuple[Config, Config]) -> tuple[tuple[Side, Side], int]:
    """Both configurations over the inputs; the two sides, and the instant both were brought
    to (`until`, or the last event's)."""
    sides = tuple(Side(config, Replay(config), Emitted()) for config in configs)
    sourced = read_inputs(options.inputs)
    lines = sourced if options.arrival_order else (o.sourced for o in ordered_lines(sourced, OrderingStats()))
    for _, line in lines:
        for side in sides:
            if line.error is not None:
                side.replay.reject()
                continue
            with contextlib.suppress(InvalidEvent):  # rejected: counted in that replay's stats
                side.emitted.note(side.replay.feed(line.raw))
    clocks = [p.clock_us for side in sides for p in side.replay.partitions if p.clock_us is not None]
    until = options.until if options.until is not None else max(clocks, default=None)
    if until is None:
        raise ReplayError("no event in the input: no instant to compare at (give --until)")
    for side in sides:
        side.emitted.note(side.replay.advance(until))
    first, second = sides
    return (first, second), until
