"""`lifecycle what-if`: two configurations over the same history, side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from ..config import load_config
from ..replay.held import customers_directory
from ..replay.what_if import what_if
from .common import (
    UsageError,
    add_arrival_order_option,
    add_input_options,
    add_memory_option,
    check_readable,
    instant_argument,
    open_output,
    replay_options,
)
from .replay_command import memory_groups, told


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "what-if",
        help="two configurations over the same history: what each would have emitted",
        description="Replays the history (read once) under two configurations and tells, for every "
        "kind of change, how many each would have emitted per week and who would have received one "
        "under one and not the other; and the KPIs that depend on the configuration, side by side.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="JSONL/CSV files (.gz ok)")
    parser.add_argument(
        "--config",
        action="append",
        metavar="PATH",
        default=[],
        help="the current, then the proposed configuration",
    )
    parser.add_argument("--until", metavar="T", help="compare at this instant (default: the last event's)")
    parser.add_argument("-o", "--output", metavar="PATH", help="write the comparison here: one HTML page")
    parser.add_argument("--json", metavar="PATH", help="write the comparison here as JSON (- is stdout)")
    add_arrival_order_option(parser, "replay")
    add_memory_option(parser, "the two replays together")
    add_input_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if len(args.config) != 2:
        raise UsageError(f"--config: give exactly two (current, then proposed), got {len(args.config)}")
    if args.output is None and args.json is None:
        raise UsageError("nothing to write: give -o diff.html, --json diff.json, or both")
    if "-" in args.inputs:
        raise UsageError("what-if reads its input once for both configurations: give files, not stdin")
    check_readable(args.inputs)
    configs = (load_config(args.config[0]), load_config(args.config[1]))
    until = instant_argument("--until", args.until) if args.until else None
    page_out = open_output("--output", args.output)
    json_out = open_output("--json", args.json)
    first, second = (config.kafka.partitions for config in configs)
    # the groups are of partitions: both sides' customers must fall in the same ones
    groups = memory_groups(args, first, copies=2) if first == second else 1
    if first != second and args.memory is not None:
        print(
            "what-if: --memory is not kept to when the configurations differ in kafka.partitions",
            file=sys.stderr,
        )
    from ..report.what_if import comparison, render

    with customers_directory() as directory:
        sides, at = what_if(replay_options(args, until), configs, groups, Path(directory), told(args))
        document = comparison(sides, (args.config[0], args.config[1]), at)
    if json_out is not None:
        json_out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        json_out.flush()
    if page_out is not None:
        page_out.write(render(document).encode())
        page_out.flush()
    return 0
