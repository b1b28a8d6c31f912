"""`lifecycle replay`: run the core over order history files, without Kafka."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, NamedTuple

from ..config import load_config
from ..inputs import InputFormatError, InputLine, format_lines, open_input
from ..lifecycle import State, Transition
from ..lifecycle.transitions import Change
from ..messages import FileSource, InvalidEvent, customer_record, encode, rejection
from ..replay import Replay
from ..time_order import OrderingStats, SourcedLine, in_time_order
from .common import UsageError, add_input_options, check_readable, input_layout, instant_argument, open_output


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
    parser.add_argument(
        "--arrival-order",
        action="store_true",
        help="replay lines in the files' order (default: in occurred_at order, ties in file order)",
    )
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
    transitions_out = open_output("--transitions", args.transitions)
    segment_changes_out = open_output("--segment-changes", args.segment_changes)
    states_out = open_output("--states", args.states)
    rejects_out = open_output("--rejects", args.rejects)
    replay = Replay(config)
    # Kept past the return: freeing a large replay's millions of objects one by one costs as
    # much as a twentieth of the run, and the `lifecycle` process ends right after without
    # freeing them (see `stream.cli.console`). The next replay in the same process drops it.
    _finished[:] = [replay]
    with _few_collections():
        outputs = _Outputs(transitions_out, segment_changes_out, states_out, rejects_out)
        return _replay(args, replay, until, outputs)


_finished: list[Replay] = []


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Run the cyclic garbage collector rarely while a replay builds up its state.

    A replay keeps millions of objects alive and makes no reference cycles; at the default
    thresholds the collector keeps re-scanning them, a quarter of the run's time. On the way
    out they are frozen (left to reference counting alone) before the thresholds come back,
    or the next allocation would start a full scan of them (1.5 s after a 500k-event replay).
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(*thresholds)


class _Outputs(NamedTuple):
    transitions: BinaryIO | None
    segment_changes: BinaryIO | None
    states: BinaryIO | None
    rejects: BinaryIO | None


def _replay(args: argparse.Namespace, replay: Replay, until: int | None, outputs: _Outputs) -> int:
    started = time.perf_counter()
    progress = _progress_bar(args.inputs)
    write_transitions = _writer(outputs.transitions, outputs.segment_changes)
    states_out, rejects_out = outputs.states, outputs.rejects
    lines: Iterable[SourcedLine] = _read_inputs(args, progress)
    ordering = OrderingStats()
    if not args.arrival_order:
        lines = in_time_order(lines, ordering)
    for path, line in lines:
        reason = line.error
        if reason is None:
            try:
                write_transitions(replay.feed(line.raw))
                continue
            except InvalidEvent as invalid:
                reason = str(invalid)
        else:
            replay.reject()
        if rejects_out is not None:
            source = FileSource(path=path, line=line.line)
            rejects_out.write(encode(rejection(line.raw, reason, source)) + b"\n")
    if until is not None:
        write_transitions(replay.advance(until))
    if progress is not None:
        progress.close()
    states = Counter[str]()
    for customer in replay.customers():
        states[customer.state.value] += 1
        if states_out is not None:
            states_out.write(encode(customer_record(customer)) + b"\n")
    for handle in outputs:
        if handle is not None:
            handle.flush()
            if handle is not sys.stdout.buffer:
                handle.close()
    _print_summary(replay, states, time.perf_counter() - started)
    if ordering.out_of_order:
        print(
            f"replayed in occurred_at order: {ordering.out_of_order} of {ordering.lines} lines came "
            "after a later one in the input (--arrival-order keeps the files' order)",
            file=sys.stderr,
        )
    return 0


def _read_inputs(args: argparse.Namespace, progress: Any) -> Iterator[SourcedLine]:
    for path in args.inputs:
        try:
            stream = open_input(path)
        except OSError as error:
            raise UsageError(f"input {path}: {error.strerror}") from None
        try:
            yield from _tagged(path, format_lines(stream, args.format, input_layout(args)), progress)
        except InputFormatError as error:
            raise UsageError(f"input {path}: {error}") from None


def _tagged(path: str, lines: Iterator[InputLine], progress: Any) -> Iterator[SourcedLine]:
    for line in lines:
        if progress is not None:
            progress.update(len(line.raw) + 1)
        yield SourcedLine(path, line)


def _writer(transitions_out: BinaryIO | None, segment_changes_out: BinaryIO | None) -> Any:
    """Writes each change to its file, in emission order; those with no file are dropped."""
    if transitions_out is None and segment_changes_out is None:
        return lambda changes: None
    write_transition = transitions_out.write if transitions_out is not None else None
    write_segment_change = segment_changes_out.write if segment_changes_out is not None else None

    def write_changes(changes: list[Change]) -> None:
        for change in changes:
            write = write_transition if isinstance(change, Transition) else write_segment_change
            if write is not None:
                write(encode(change) + b"\n")

    return write_changes


def _progress_bar(inputs: list[str]) -> Any:
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    total = sum(os.path.getsize(p) for p in inputs if p != "-" and not p.endswith(".gz"))
    return tqdm(total=total or None, unit="B", unit_scale=True, desc="replay", file=sys.stderr)


def _print_summary(replay: Replay, states: Counter[str], seconds: float) -> None:
    stats = replay.stats
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
