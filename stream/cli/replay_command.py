"""`lifecycle replay`: run the core over order history files, without Kafka."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from itertools import islice
from typing import Any, BinaryIO, NamedTuple

from ..collector import few_collections
from ..config import Config, load_config
from ..inputs.messages import FileSource, InvalidEvent, customer_record, encode, rejection
from ..inputs.time_order import OrderedLine, OrderingStats, line_head, ordered_lines
from ..lifecycle import State, Transition
from ..lifecycle.transitions import Change
from ..replay.driver import Replay, ReplayStats
from .common import (
    UsageError,
    add_arrival_order_option,
    add_input_options,
    add_jobs_option,
    check_readable,
    checked_jobs,
    instant_argument,
    open_output,
    read_inputs,
)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "replay",
        help="run the lifecycle rules over order history files",
        description="Replay order events from files through the lifecycle core, as the live "
        "worker would, and write transitions, final states and rejects.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="JSONL files of order events (- is stdin; .gz is read as gzip)",
    )
    add_arrival_order_option(parser, "replay")
    parser.add_argument(
        "--until", metavar="RFC3339", help="after the input, move the clock to this instant, firing deadlines"
    )
    parser.add_argument("--transitions", metavar="PATH", help="write transitions here (JSONL)")
    parser.add_argument(
        "--segment-changes", metavar="PATH", help="write segment and class changes here (JSONL)"
    )
    parser.add_argument("--states", metavar="PATH", help="write final customer states here (JSONL)")
    parser.add_argument("--rejects", metavar="PATH", help="write rejected input lines here (JSONL)")
    parser.add_argument("--config", metavar="PATH", help="TOML config (policy, partitions)")
    add_jobs_option(parser, "replaying")
    parser.add_argument(
        "--no-pii",
        action="store_true",
        help="drop email and marketing consent from every output (privacy.contact_data = false)",
    )
    add_input_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, overrides={"privacy": {"contact_data": False}} if args.no_pii else None)
    until = instant_argument("--until", args.until) if args.until else None
    check_readable(args.inputs)
    if args.inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    started = time.perf_counter()
    outputs = ReplayOutputs(
        open_output("--transitions", args.transitions),
        open_output("--segment-changes", args.segment_changes),
        open_output("--states", args.states),
        open_output("--rejects", args.rejects),
    )
    jobs = checked_jobs(args, config.kafka.partitions)
    # stdin and pipes are read once, by one process: jobs open and read their inputs themselves
    if jobs > 1 and all(path != "-" and os.path.isfile(path) for path in args.inputs):
        from stream.replay.jobs import replay_in_jobs

        result = replay_in_jobs(args, config, until, outputs, jobs)
    else:
        result = replay_here(args, config, until, outputs, progress=progress_bar(args))
    _close(outputs)
    _print_summary(result, time.perf_counter() - started)
    return 0


class ReplayResult(NamedTuple):
    """What a replay (or one job of it) tells in its summary."""

    stats: ReplayStats
    states: Counter[str]
    lines: int  # lines in the order sorted (those of the job, with --jobs)
    out_of_order: int


def replay_here(
    args: argparse.Namespace,
    config: Config,
    until: int | None,
    outputs: ReplayOutputs,
    keep: Callable[[str | None], bool] | None = None,
    progress: Any = None,
) -> ReplayResult:
    """Replay in this process: every line, or those of the customers `keep` keeps (given
    each line's customer id, None when it has none readable). `progress`: a `ReplayProgress`,
    or what a job counts for its parent's (`stream.replay.shared_count.JobProgress`)."""
    ordering = OrderingStats()
    read_progress = progress.read if progress is not None else None
    lines: Iterable[OrderedLine]
    if args.arrival_order:
        everything = enumerate(read_inputs(args, read_progress))
        lines = (OrderedLine(0, n, s) for n, s in everything if keep is None or keep(line_head(s.line)[1]))
    else:
        lines = ordered_lines(read_inputs(args, read_progress), ordering, keep=keep)
        if progress is not None:
            lines = counted_as_replayed(lines, ordering, progress)
    return replay_lines(config, until, outputs, lines, ordering, tagged=keep is not None, progress=progress)


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
    # Kept past the return: freeing a large replay's millions of objects one by one costs as
    # much as a twentieth of the run, and the `lifecycle` process ends right after without
    # freeing them (see `stream.cli.console`). The next replay in the same process drops it.
    _finished[:] = [replay]
    with few_collections():
        return _replay(replay, until, outputs, lines, ordering, tagged, progress)


_finished: list[Replay] = []


def finished_replay() -> Replay:
    """The replay `replay_here` ran last, with its customers."""
    return _finished[0]


class ReplayOutputs(NamedTuple):
    transitions: BinaryIO | None
    segment_changes: BinaryIO | None
    states: BinaryIO | None
    rejects: BinaryIO | None


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
    write_changes = _writer(outputs.transitions, outputs.segment_changes)
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
    return ReplayResult(replay.stats, states, ordering.lines, ordering.out_of_order)


# Fixed-width tags, so that merging the jobs' files by their bytes merges them by place.
TAG_WIDTH = 37
_OFFSET = 1 << 62


def line_tag(instant: int, position: int) -> bytes:
    return b"1%020d%015d|" % (instant + _OFFSET, position)


def until_tag(partition: int) -> bytes:
    return b"2%020d%015d|" % (partition, 0)


def state_tag(partition: int, index: int) -> bytes:
    return b"3%020d%015d|" % (partition, index)


def _close(outputs: ReplayOutputs) -> None:
    for handle in outputs:
        if handle is not None:
            handle.flush()
            if handle is not sys.stdout.buffer:
                handle.close()


def _writer(transitions_out: BinaryIO | None, segment_changes_out: BinaryIO | None) -> Any:
    """Writes each change to its file, in emission order, after `tag`; those with no file are
    dropped."""
    if transitions_out is None and segment_changes_out is None:
        return lambda changes, tag: None
    write_transition = transitions_out.write if transitions_out is not None else None
    write_segment_change = segment_changes_out.write if segment_changes_out is not None else None

    def write_changes(changes: list[Change], tag: bytes) -> None:
        for change in changes:
            write = write_transition if isinstance(change, Transition) else write_segment_change
            if write is not None:
                write(tag + encode(change) + b"\n")

    return write_changes


def replayed_history(args: argparse.Namespace, config: Config, until: int | None) -> tuple[Replay, int]:
    """Replay `args.inputs` here, for commands that read the customers it leaves (report,
    model): the replay, and the instant to read them at: `until`, or the last event's, to
    which every customer is then brought (deadlines fired)."""
    check_readable(args.inputs)
    if args.inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    replay_here(args, config, until, ReplayOutputs(None, None, None, None), progress=progress_bar(args))
    replay = finished_replay()
    if until is not None:
        return replay, until
    clocks = [p.clock_us for p in replay.partitions if p.clock_us is not None]
    if not clocks:
        raise UsageError("no event in the input: no instant to read it at (give --until)")
    replay.advance(max(clocks))
    return replay, max(clocks)


def shows_progress() -> bool:
    """Whether a replay shows its progress: only on a terminal."""
    return sys.stderr.isatty()


def progress_bar(args: argparse.Namespace) -> ReplayProgress | None:
    if not shows_progress():
        return None
    from tqdm import tqdm

    total = sum(os.path.getsize(p) for p in args.inputs if p != "-" and not p.endswith(".gz"))
    return ReplayProgress(total or None, not args.arrival_order, partial(tqdm, file=sys.stderr))


class ReplayProgress:
    """Progress in two phases: bytes of input read, then lines replayed. In time order every
    line is read and sorted before the first is replayed, so bytes alone would show a full
    bar for most of the run; in arrival order reading and replaying interleave, and the bar
    of bytes is the replay's. `new_bar` makes a bar (tqdm's arguments)."""

    def __init__(self, input_bytes: int | None, in_time_order: bool, new_bar: Callable[..., Any]) -> None:
        self.new_bar = new_bar
        reading = "read" if in_time_order else "replay"
        self.read = new_bar(total=input_bytes, unit="B", unit_scale=True, desc=reading)
        self.replay: Any = None

    def start_replay(self, lines: int) -> None:
        """Every line is read: `lines` of them, all to be replayed."""
        self.read.close()
        self.replay = self.new_bar(total=lines, unit=" lines", unit_scale=True, desc="replay")

    def replayed(self, lines: int) -> None:
        self.replay.update(lines)

    def close(self) -> None:
        (self.read if self.replay is None else self.replay).close()


def _print_summary(result: ReplayResult, seconds: float) -> None:
    stats, states = result.stats, result.states
    rate = stats.read / seconds if seconds > 0 else 0.0
    outcomes = ", ".join(
        f"{name} {stats.outcomes[name]}" for name in ("applied", "late", "duplicate", "rejected")
    )
    by_name = ", ".join(f"{n} {c}" for n, c in sorted(stats.transitions.items())) or "none"
    by_state = ", ".join(f"{s.value} {states[s.value]}" for s in State)
    print(f"read {stats.read} events in {seconds:.2f} s ({rate:,.0f} events/s): {outcomes}", file=sys.stderr)
    print(f"transitions: {by_name}", file=sys.stderr)
    print(f"customers by state: {by_state}", file=sys.stderr)
    if stats.segment_changes:
        by_kind = ", ".join(f"{n} {c}" for n, c in sorted(stats.segment_changes.items()))
        print(f"segment changes: {by_kind}", file=sys.stderr)
    if stats.folded:
        print(
            f"orders folded into their customers' totals: {stats.folded} (customers with more than "
            "limits.orders_kept orders; see docs/lifecycle.md)",
            file=sys.stderr,
        )
    if result.out_of_order:
        print(
            f"replayed in occurred_at order: {result.out_of_order} of {result.lines} lines came "
            "after a later one in the input (--arrival-order keeps the files' order)",
            file=sys.stderr,
        )
