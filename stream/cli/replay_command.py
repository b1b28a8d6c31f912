"""`lifecycle replay`: run the core over order history files, without Kafka."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ..config import Config, load_config
from ..lifecycle import State
from ..replay.held import Side, replay_sides_in_groups
from ..replay.memory import input_estimate, passes, plan_note
from ..replay.run import ReplayOutputs, ReplayResult, replay_here, replayed_history
from .common import (
    UsageError,
    add_arrival_order_option,
    add_input_options,
    add_jobs_option,
    add_memory_option,
    check_readable,
    checked_jobs,
    instant_argument,
    memory_budget,
    open_output,
    replay_options,
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
    parser.add_argument("--triggers", metavar="PATH", help="write trigger firings here (JSONL)")
    parser.add_argument("--states", metavar="PATH", help="write final customer states here (JSONL)")
    parser.add_argument("--rejects", metavar="PATH", help="write rejected input lines here (JSONL)")
    parser.add_argument("--config", metavar="PATH", help="TOML config (policy, partitions)")
    add_jobs_option(parser, "replaying")
    add_memory_option(parser, "the replay")
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
        open_output("--triggers", args.triggers),
    )
    jobs = checked_jobs(args, config.kafka.partitions)
    options = replay_options(args, until)
    groups = memory_groups(args, config.kafka.partitions, jobs)
    if groups > 1:
        from stream.replay.jobs import replay_in_jobs

        new_progress = (lambda: progress_bar(args)) if shows_progress() else None
        result = replay_in_jobs(options, config, outputs, jobs, new_progress, groups=groups)
    else:
        result = replay_here(options, config, outputs, progress=progress_bar(args))
    _close(outputs)
    _print_summary(result, time.perf_counter() - started)
    return 0


def _close(outputs: ReplayOutputs) -> None:
    for handle in outputs:
        if handle is not None:
            handle.flush()
            if handle is not sys.stdout.buffer:
                handle.close()


def memory_groups(args: argparse.Namespace, partitions: int, jobs: int = 1, copies: int = 1) -> int:
    """In how many groups of partitions, `jobs` processes at a time, to replay the inputs to
    keep to --memory (`copies`: configurations replayed side by side); told on stderr when
    the budget changes how the work runs. Stdin and pipes are read once, by one process (1):
    the groups open and read their inputs themselves."""
    budget = memory_budget(args)
    if not all(path != "-" and os.path.isfile(path) for path in args.inputs):
        if args.memory is not None:
            print(
                f"{args.command}: --memory is not kept to for stdin or a pipe, read once by one process",
                file=sys.stderr,
            )
        return 1
    plan = passes(copies * input_estimate(args.inputs, args.format), budget, jobs, partitions)
    note = plan_note(plan, budget, jobs, "replaying")
    if note is not None:
        print(f"{args.command}: {note}", file=sys.stderr)
    return plan.groups


def replayed(
    args: argparse.Namespace, config: Config, until: int | None, directory: Path
) -> tuple[Side, int]:
    """The inputs replayed for a command that reads every customer (report, model), and the
    instant to read them at (see `replayed_history`): in this process, or beyond --memory in
    groups of partitions, their customers written under `directory` (`stream.replay.held`)."""
    check_readable(args.inputs)
    if args.inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    options = replay_options(args, until)
    groups = memory_groups(args, config.kafka.partitions)
    if groups > 1:
        sides, at = replay_sides_in_groups(options, [config], False, groups, directory, told(args))
        return sides[0], at
    replay, at = replayed_history(options, config, progress_bar(args))
    return Side(config, replay), at


def told(args: argparse.Namespace) -> Callable[[str], None]:
    """What tells the progress of work done in steps, on stderr, after the command's name."""
    return lambda text: print(f"{args.command}: {text}", file=sys.stderr, flush=True)


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
    if stats.firings:
        by_trigger = ", ".join(f"{n} {c}" for n, c in sorted(stats.firings.items()))
        print(f"trigger firings: {by_trigger}", file=sys.stderr)
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
