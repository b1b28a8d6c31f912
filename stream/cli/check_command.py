"""`lifecycle check`: validate order files without replaying them."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from ..inputs.messages import InvalidEvent, decode_event
from .common import add_input_options, check_readable, read_inputs

SHOWN = 5  # rejected lines printed per reason kind


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "check",
        help="validate order files without replaying them",
        description="Read order files as replay would and report every line that would be "
        "rejected, with counts by kind. Exit 0 when every line is a valid event, 1 otherwise.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="order files (- is stdin)")
    add_input_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_readable(args.inputs)
    valid = 0
    kinds: Counter[str] = Counter()
    for path, line in read_inputs(args):
        reason, kind = line.error, "row"
        if reason is None:
            try:
                decode_event(line.raw)
                valid += 1
                continue
            except InvalidEvent as invalid:
                reason, kind = str(invalid), invalid.kind
        kinds[kind] += 1
        if kinds[kind] <= SHOWN:
            print(f"{path}:{line.line}: {reason}", file=sys.stderr)
    rejected = sum(kinds.values())
    by_kind = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())) or "none"
    print(f"{valid + rejected} lines: {valid} valid events, {rejected} rejected ({by_kind})", file=sys.stderr)
    return 1 if rejected else 0
