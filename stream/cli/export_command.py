"""`lifecycle export-segment`: the customers of a lifecycle state or a segment, as CSV, from a
states file (`lifecycle replay --states`), for teams that upload lists to their email tool."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from typing import Any

import orjson

from ..lifecycle import State
from ..lifecycle.money import to_major_units
from .common import UsageError, check_readable, open_output

COLUMNS = (
    "customer_id",
    "email",
    "accepts_marketing",
    "state",
    "segments",
    "class",
    "order_count",
    "first_order_at",
    "last_order_at",
    "spend",
)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "export-segment",
        help="customers of a state, segment or class as CSV, from a states file",
        description="Write the customers of a lifecycle state (e.g. at_risk), a segment or a "
        "class, as found in a states file written by `lifecycle replay --states`, as CSV.",
    )
    parser.add_argument("group", metavar="STATE_OR_SEGMENT", help="a state, a segment name, or class:<name>")
    parser.add_argument("--states", metavar="PATH", required=True, help="customer states (JSONL)")
    parser.add_argument("-o", "--output", metavar="PATH", default="-", help="CSV file (default stdout)")
    parser.set_defaults(run=run)


def _member(group: str) -> Any:
    if group.startswith("class:"):
        name = group.removeprefix("class:")
        return lambda record: record.get("class") == name
    if group in {s.value for s in State}:
        return lambda record: record.get("state") == group
    return lambda record: group in (record.get("segments") or ())


def run(args: argparse.Namespace) -> int:
    check_readable([args.states])
    member = _member(args.group)
    out = open_output("--output", args.output)
    assert out is not None
    row = io.StringIO()
    writer = csv.writer(row)

    def write(values: list[Any] | tuple[str, ...]) -> None:
        writer.writerow(values)
        out.write(row.getvalue().encode())
        row.seek(0)
        row.truncate()

    write(COLUMNS)
    count = 0
    with open(args.states, "rb") as states:
        for number, line in enumerate(states, 1):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise UsageError(f"--states {args.states}: line {number} is not JSON") from None
            if not member(record):
                continue
            count += 1
            spend = " ".join(
                f"{to_major_units(amount, cur)} {cur}" for cur, amount in record["spend"].items()
            )
            write(
                [
                    record["customer_id"],
                    record.get("email") or "",
                    {True: "yes", False: "no"}.get(record.get("accepts_marketing"), ""),
                    record["state"],
                    " ".join(record.get("segments") or ()),
                    record.get("class") or "",
                    record["order_count"],
                    record.get("first_order_at") or "",
                    record.get("last_order_at") or "",
                    spend,
                ]
            )
    out.flush()
    if out is not sys.stdout.buffer:
        out.close()
    print(f"{count} customers in {args.group}", file=sys.stderr)
    return 0
