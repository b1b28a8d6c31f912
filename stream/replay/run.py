"""Replay as a library: order history files through the core, in this process, with typed
options; `stream.replay.jobs` shares the work among processes. The `lifecycle replay`,
`report`, `model` commands parse their arguments into these options and map the errors
(InputFormatError, ReplayError) to exit codes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, BinaryIO, NamedTuple

from ..collector import few_collections
from ..config import Config
from ..inputs.messages import FileSource, InvalidEvent, customer_record, encode, rejection
from ..inputs.sources import InputFiles, read_inputs
from ..inputs.time_order import OrderedLine, OrderingStats, line_head, ordered_lines
from ..lifecycle import Transition
from ..lifecycle.transitions import Change, SegmentChange, TriggerFired
from .driver import Replay, ReplayStats


class ReplayError(Exception):
    """A replay that cannot give a result: the message says why."""


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay: the input files, in time order or as they come (`arrival_order`), and
    the instant to move every partition clock to after them (`until`, None: no further)."""

    inputs: InputFiles
    arrival_order: bool = False
    until: int | None = None


class ReplayResult(NamedTuple):
    """What a replay (or one job of it) tells in its summary; and, replayed in this process,
    the replay with its customers (kept by whoever holds the result: freeing a large
    replay's millions of objects one by one costs a twentieth of the run, and the
    `lifecycle` process ends without freeing them, see `stream.cli.console`)."""

    stats: ReplayStats
    states: Counter[str]
    lines: int  # lines in the order sorted (those of the job, with --jobs)
    out_of_order: int
    replay: Replay | None = None


def replay_here(
    options: ReplayOptions,
    config: Config,
    outputs: ReplayOutputs,
    keep: Callable[[str | None], bool] | None = None,
    progress: Any = None,
) -> ReplayResult:
    """Replay in this process: every line, or those of the customers `keep` keeps (given
    each line's customer id, None when it has none readable). `progress`: a `ReplayProgress`,
    or what a job counts for its parent's (`stream.replay.shared_count.JobProgress`)."""
    ordering = OrderingStats()
    lines = lines_to_replay(options, ordering, keep, progress.read if progress is not None else None)
    if progress is not None and not options.arrival_order:
        lines = counted_as_replayed(lines, ordering, progress)
    tagged = keep is not None
    return replay_lines(config, options.until, outputs, lines, ordering, tagged=tagged, progress=progress)


def lines_to_replay(
    options: ReplayOptions,
    ordering: OrderingStats,
    keep: Callable[[str | None], bool] | None = None,
    read_progress: Any = None,
) -> Iterable[OrderedLine]:
    """The input's lines in time order (counted in `ordering`), or as they come
    (`arrival_order`): those of the customers `keep` keeps (given each line's customer id,
    None when it has none readable)."""
    if options.arrival_order:
        everything = enumerate(read_inputs(options.inputs, read_progress))
        return (OrderedLine(0, n, s) for n, s in everything if keep is None or keep(line_head(s.line)[1]))
    return ordered_lines(read_inputs(options.inputs, read_progress), ordering, keep=keep)


def replay_lines(
    config: Config,
    until: int | None,
    outputs: ReplayOutputs,
    lines: Iterable[OrderedLine],
    ordering: OrderingStats,
    *,
    tagged: bool,
    progress: Any = None,
) -> ReplayResult:
    """Replay `lines` (read lazily: reading counts in `ordering`) in this process. `tagged`
    (a job of `--jobs`): each output line starts with its place in the order one process
    writes (see `stream.replay.jobs`)."""
    replay = Replay(config)
    with few_collections():
        return _replay(replay, until, outputs, lines, ordering, tagged, progress)


class ReplayOutputs(NamedTuple):
    transitions: BinaryIO | None
    segment_changes: BinaryIO | None
    states: BinaryIO | None
    rejects: BinaryIO | None
    triggers: BinaryIO | None = None


# lines replayed between two updates of the progress: the replay loop is too hot for a
# bar's update (microseconds) on every line
_COUNTED_EVERY = 4096


def counted_as_replayed(
    lines: Iterable[OrderedLine], ordering: OrderingStats, progress: Any
) -> Iterator[OrderedLine]:
    """`lines` in time order, counted on `progress` a chunk at a time as they are replayed.
    The first comes once every line is read (and counted in `ordering`) and sorted: then
    the progress turns from reading to replaying."""
    remaining = iter(lines)
    chunk = list(islice(remaining, _COUNTED_EVERY))
    progress.start_replay(ordering.lines)
    while chunk:
        yield from chunk
        progress.replayed(len(chunk))
        chunk = list(islice(remaining, _COUNTED_EVERY))


def _replay(
    replay: Replay,
    until: int | None,
    outputs: ReplayOutputs,
    lines: Iterable[OrderedLine],
    ordering: OrderingStats,
    tagged: bool,
    progress: Any,
) -> ReplayResult:
    write_changes = _writer(outputs)
    states_out, rejects_out = outputs.states, outputs.rejects
    for instant, position, (path, line) in lines:
        reason = line.error
        if reason is None:
            try:
                changes = replay.feed(line.raw)
            except InvalidEvent as invalid:
                reason = str(invalid)
            else:
                # tagged only when it has outputs: about two lines in three have none
                if changes:
                    write_changes(changes, line_tag(instant, position) if tagged else b"")
                continue
        else:
            replay.reject()
        if rejects_out is not None:
            source = FileSource(path=path, line=line.line)
            tag = line_tag(instant, position) if tagged else b""
            rejects_out.write(tag + encode(rejection(line.raw, reason, source)) + b"\n")
    if until is not None:
        for number, fired in replay.advance_partitions(until):
            write_changes(fired, until_tag(number) if tagged else b"")
    if progress is not None:
        progress.close()
    states = Counter[str]()
    for index, (number, customer) in enumerate(replay.customers_by_partition()):
        states[customer.state.value] += 1
        if states_out is not None:
            prefix = state_tag(number, index) if tagged else b""
            partition = replay.partitions[number]
            record = customer_record(customer, partition.clock_us, partition.scorer)
            states_out.write(prefix + encode(record) + b"\n")
    return ReplayResult(replay.stats, states, ordering.lines, ordering.out_of_order, replay)


# Fixed-width tags, so that merging the jobs' files by their bytes merges them by place.
TAG_WIDTH = 37
_OFFSET = 1 << 62


def line_tag(instant: int, position: int) -> bytes:
    return b"1%020d%015d|" % (instant + _OFFSET, position)


def until_tag(partition: int) -> bytes:
    return b"2%020d%015d|" % (partition, 0)


def state_tag(partition: int, index: int) -> bytes:
    return b"3%020d%015d|" % (partition, index)


def _writer(outputs: ReplayOutputs) -> Any:
    """Writes each change to its file, in emission order, after `tag`; those with no file are
    dropped."""
    files = {
        Transition: outputs.transitions,
        SegmentChange: outputs.segment_changes,
        TriggerFired: outputs.triggers,
    }
    writes = {kind: handle.write for kind, handle in files.items() if handle is not None}
    if not writes:
        return lambda changes, tag: None

    def write_changes(changes: list[Change], tag: bytes) -> None:
        for change in changes:
            write = writes.get(type(change))
            if write is not None:
                write(tag + encode(change) + b"\n")

    return write_changes


def replayed_history(options: ReplayOptions, config: Config, progress: Any = None) -> tuple[Replay, int]:
    """Replay the inputs here, for what reads the customers it leaves (report, model): the
    replay, and the instant to read them at: `until`, or the last event's, to which every
    customer is then brought (deadlines fired)."""
    result = replay_here(options, config, ReplayOutputs(None, None, None, None), progress=progress)
    replay = result.replay
    assert replay is not None
    if options.until is not None:
        return replay, options.until
    clocks = [p.clock_us for p in replay.partitions if p.clock_us is not None]
    if not clocks:
        raise ReplayError("no event in the input: no instant to read it at (give --until)")
    replay.advance(max(clocks))
    return replay, max(clocks)
