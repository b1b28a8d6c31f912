"""A replay's customers for the commands that read them all at once (report, model, what-if),
within a memory budget.

Replayed in this process, the customers stay in the replay. Beyond the budget
(`stream.replay.memory`), the partitions are replayed in groups, one process after another
as `replay --memory` does, each writing its customers to disk partition by partition, in the
order a replay holds them, and what it noted beside them (counts, experiment exposures, the
funnel's sign-ups and firings, what-if's tally). This process merges those, then brings each
partition in turn to the instant the customers are read at, its deadlines fired as a replay
of every partition fires them (partition after partition), and writes it back. The commands
then read the customers from disk, one decoded at a time, as often as they go over them:
what is held at once is one partition's customers, and what the commands gather.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import struct
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import msgspec

from ..collector import few_collections
from ..config import Config
from ..inputs.files import InputLine
from ..inputs.messages import InvalidEvent
from ..inputs.time_order import OrderingStats
from ..lifecycle import CustomerState
from ..lifecycle.experiments import ExposureLog
from ..lifecycle.instants import iso_week
from ..lifecycle.transitions import Change
from .driver import Replay, ReplayStats
from .funnel_log import FunnelLog
from .jobs import job_of
from .run import ReplayError, ReplayOptions, lines_to_replay

_FRAME = struct.Struct("<I")  # the length of each encoded customer, before it


@dataclass
class Emitted:
    """What one configuration emitted, for what-if: changes by kind (`Change.exposure_name`:
    a transition's name, `entered_segment:<s>`, `left_segment:<s>`, `class_changed:<class>`)
    and ISO week of `occurred_at`, and the customers who received each kind. A change counts
    as a live worker would have emitted it fresh: every change but those a change of segment
    definitions makes (cause `configuration`), whatever its age today."""

    by_week: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    customers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def note(self, changes: list[Change]) -> None:
        for change in changes:
            if getattr(change, "cause", None) == "configuration":
                continue
            kind = change.exposure_name()
            self.by_week[kind][iso_week(change.occurred_at)] += 1
            self.customers[kind].add(change.customer_id)

    def add(self, other: Emitted) -> None:
        """Another group's, of other customers."""
        for kind, weeks in other.by_week.items():
            self.by_week[kind].update(weeks)
        for kind, customers in other.customers.items():
            self.customers[kind] |= customers


@dataclass
class Side:
    """One configuration's replay: its counts and logs in `replay`, its customers there or,
    replayed in groups, in `files` (one a partition, in partition order)."""

    config: Config
    replay: Replay
    emitted: Emitted | None = None
    files: list[Path] | None = None

    def feed(self, line: InputLine) -> None:
        if line.error is not None:
            self.replay.reject()
            return
        with contextlib.suppress(InvalidEvent):  # rejected: counted in the replay's stats
            changes = self.replay.feed(line.raw)
            if self.emitted is not None:
                self.emitted.note(changes)

    def advance_partition(self, number: int, until_us: int) -> None:
        fired = self.replay.advance_partition(number, until_us)
        if self.emitted is not None:
            self.emitted.note(fired)

    def latest_clock(self) -> int | None:
        return max((p.clock_us for p in self.replay.partitions if p.clock_us is not None), default=None)

    def customers(self) -> Iterator[CustomerState]:
        """Every customer, partition by partition, as the replay holds them."""
        if self.files is None:
            yield from self.replay.customers()
            return
        for path in self.files:
            yield from read_customers(path)


def new_side(config: Config, tally: bool) -> Side:
    return Side(config, Replay(config), Emitted() if tally else None)


def customers_directory() -> tempfile.TemporaryDirectory[str]:
    """Where the customers of a replay in groups are written (removed on leaving)."""
    return tempfile.TemporaryDirectory(prefix="lifecycle-customers-")


def replay_sides(options: ReplayOptions, configs: list[Config], tally: bool) -> tuple[list[Side], int]:
    """Every configuration over the inputs, read once, in this process; the sides, brought
    to the instant to read them at: `until`, or the last event's of any."""
    sides = [new_side(config, tally) for config in configs]
    with few_collections():
        for line in _lines(options, None):
            for side in sides:
                side.feed(line)
    until = _read_at(options, sides)
    for side in sides:
        for number in range(side.replay.partition_count):
            side.advance_partition(number, until)
    return sides, until


def replay_sides_in_groups(
    options: ReplayOptions,
    configs: list[Config],
    tally: bool,
    groups: int,
    directory: Path,
    say: Callable[[str], None],
) -> tuple[list[Side], int]:
    """As `replay_sides`, the partitions in `groups` processes one after another, the sides'
    customers written under `directory`. Every configuration has the same partitions."""
    partitions = configs[0].kafka.partitions
    assert all(config.kafka.partitions == partitions for config in configs)
    context = multiprocessing.get_context("fork")
    for group in range(groups):
        process = context.Process(target=_group, args=(options, configs, tally, group, groups, directory))
        process.start()
        process.join()
        code = process.exitcode
        if code != 0:
            ended = (
                f"was killed by signal {-code}" if code is not None and code < 0 else f"failed (exit {code})"
            )
            raise ReplayError(f"the replay of group {group + 1} of {groups} {ended}; see the messages above")
        say(f"group {group + 1} of {groups} replayed")
    sides = [new_side(config, tally) for config in configs]
    for number, side in enumerate(sides):
        for group in range(groups):
            _merge(side, pickle.loads((directory / f"{number}.{group}.noted").read_bytes()))
    until = _read_at(options, sides)
    for number, side in enumerate(sides):
        side.files = [
            _brought_to(side, number, partition, until, directory) for partition in range(partitions)
        ]
    return sides, until


def _brought_to(side: Side, number: int, partition: int, until_us: int, directory: Path) -> Path:
    """One partition of a side, its customers read from disk, brought to `until_us` and
    written back; what it fired noted in the side."""
    replay = side.replay
    replayed = directory / f"{number}.{partition}.customers"
    held = directory / f"{number}.{partition}.held"
    with few_collections():
        customers = {customer.customer_id: customer for customer in read_customers(replayed)}
    replay.partitions[partition] = replay.new_partition(customers, replay.partitions[partition].clock_us)
    side.advance_partition(partition, until_us)
    write_customers(held, customers.values())
    replayed.unlink()
    replay.partitions[partition] = replay.new_partition({}, until_us)
    return held


def _group(
    options: ReplayOptions, configs: list[Config], tally: bool, group: int, groups: int, directory: Path
) -> None:
    """One group's process: its partitions' customers replayed and written, with what each
    side noted."""
    partitions = configs[0].kafka.partitions
    sides = [new_side(config, tally) for config in configs]
    mine = lambda customer_id: job_of(customer_id, partitions, groups) == group  # noqa: E731
    with few_collections():
        for line in _lines(options, mine):
            for side in sides:
                side.feed(line)
    numbers = range(group, partitions, groups)
    for number, side in enumerate(sides):
        replay = side.replay
        for partition in numbers:
            write_customers(
                directory / f"{number}.{partition}.customers", replay.partitions[partition].customers.values()
            )
        clocks = {partition: replay.partitions[partition].clock_us for partition in numbers}
        noted = _Noted(replay.stats, replay.exposures, replay.funnel, side.emitted, clocks)
        (directory / f"{number}.{group}.noted").write_bytes(pickle.dumps(noted))


class _Noted(NamedTuple):
    """What a group's process noted beside its customers, for one side."""

    stats: ReplayStats
    exposures: ExposureLog | None
    funnel: FunnelLog
    emitted: Emitted | None
    clocks: dict[int, int | None]  # its partitions' clocks


def _merge(side: Side, noted: _Noted) -> None:
    replay = side.replay
    for partition, clock in noted.clocks.items():
        replay.partitions[partition].clock_us = clock
    replay.stats.add(noted.stats)
    if replay.exposures is not None and noted.exposures is not None:
        replay.exposures.add(noted.exposures)
    replay.funnel.add(noted.funnel)
    if side.emitted is not None and noted.emitted is not None:
        side.emitted.add(noted.emitted)


def _lines(options: ReplayOptions, keep: Callable[[str | None], bool] | None) -> Iterator[InputLine]:
    return (ordered.sourced.line for ordered in lines_to_replay(options, OrderingStats(), keep))


def _read_at(options: ReplayOptions, sides: list[Side]) -> int:
    if options.until is not None:
        return options.until
    latest = max((c for side in sides if (c := side.latest_clock()) is not None), default=None)
    if latest is None:
        raise ReplayError("no event in the input: no instant to read it at (give --until)")
    return latest


def write_customers(path: Path, customers: Iterable[CustomerState]) -> None:
    encode = msgspec.msgpack.Encoder().encode
    with open(path, "wb") as out:
        for customer in customers:
            body = encode(customer)
            out.write(_FRAME.pack(len(body)))
            out.write(body)


def read_customers(path: Path) -> Iterator[CustomerState]:
    decode = msgspec.msgpack.Decoder(CustomerState).decode
    with open(path, "rb", buffering=1 << 20) as source:
        while header := source.read(_FRAME.size):
            (size,) = _FRAME.unpack(header)
            yield decode(source.read(size))
