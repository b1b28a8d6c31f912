"""`lifecycle rebuild`: the live worker's state from history, without the worker."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import load_config
from ..replay.rebuild import RebuildFailed, rebuild
from ..replay.worker_group import GroupActive
from .common import (
    UsageError,
    add_jobs_option,
    add_memory_option,
    check_readable,
    checked_jobs,
    memory_budget,
    unreachable,
)
from .kafka_commands import create_topics_or_explain
from .send_command import add_sending_options, send_inputs


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "rebuild",
        help="build the worker's state from the orders topic (or files) without the worker",
        description="Reads the orders topic from its beginning to its end, runs the rules as the "
        "worker would, writes the worker's table changelogs and the customer-state topic, and "
        "commits the worker group's offsets at the end: a worker started afterwards goes on from "
        "there. INPUT files are first sent to the orders topic (in occurred_at order), which stays "
        "the source of truth. Every worker of the group must be stopped.",
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="files to send first (JSONL/CSV, .gz ok)")
    add_sending_options(parser)
    add_jobs_option(parser, "rebuilding")
    add_memory_option(parser, "the rebuild")
    parser.add_argument(
        "--emit-transitions",
        action="store_true",
        help="also write the transitions (and segment changes) to their topics, all replayed: true",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    jobs = checked_jobs(args, config.kafka.partitions)
    budget = memory_budget(args)
    check_readable(args.inputs)
    create_topics_or_explain(config)
    if args.inputs:
        send_inputs(args, config)
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(unit="events", desc="rebuild", file=sys.stderr)
    try:
        summary = rebuild(
            config,
            emit_transitions=args.emit_transitions,
            jobs=jobs,
            progress=progress,
            memory=budget,
            note=lambda text: print(f"rebuild: {text}", file=sys.stderr),
        )
    except (GroupActive, RebuildFailed) as refused:
        raise UsageError(str(refused)) from None
    except OSError as error:
        raise unreachable(config, error) from None
    finally:
        if progress is not None:
            progress.close()
    ends = ", ".join(f"{n}:{offset}" for n, offset in sorted(summary.end_offsets.items()))
    print(
        f"rebuilt {summary.customers} customers from {summary.events} events ({summary.rejected} rejected, "
        f"to dead letters; {summary.rerouted} sent on to their customer's partition) in "
        f"{summary.seconds:.1f} s with {jobs} job(s); {summary.written} records written; "
        f"{config.worker.app_id} committed at {config.topics.orders} offsets {ends}",
        file=sys.stderr,
    )
    if args.emit_transitions:
        print(f"emitted {sum(summary.transitions.values())} transitions and segment changes", file=sys.stderr)
    return 0
