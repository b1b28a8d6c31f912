"""`lifecycle generate`: deterministic synthetic order history as JSONL."""

from __future__ import annotations

import argparse
import gzip
import sys
from typing import Any

from ..inputs.generate import history
from ..lifecycle.instants import from_us
from .common import UsageError, instant_argument


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "generate",
        help="write synthetic order history (JSONL)",
        description="Seeded synthetic order history: one-timers, repeat buyers with varied "
        "rhythms, churners, cancellations, refunds, redeliveries and orders sent twice.",
    )
    parser.add_argument("--customers", type=int, default=1000, help="default 1000")
    parser.add_argument("--start", default="2024-01-01T00:00:00Z", help="RFC 3339, default 2024-01-01")
    parser.add_argument("--end", default="2026-01-01T00:00:00Z", help="RFC 3339, default 2026-01-01")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--heavy-customer",
        type=int,
        default=0,
        metavar="ORDERS",
        help="one customer more, `heavy`, with this many orders over the whole span (a wholesale "
        "buyer; guest checkouts under one id); the other customers' events stay the same",
    )
    parser.add_argument(
        "--engagement",
        type=int,
        default=0,
        metavar="PER_ORDER",
        help="add what happens before orders: about this many engagement events an order "
        "(products viewed, carts, checkouts), sign-ups, abandoned carts, and prospects who never "
        "order (a third as many as customers); the orders stay the same",
    )
    parser.add_argument("--output", "-o", default="-", help="path (.gz compresses), default stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    start = instant_argument("--start", args.start)
    end = instant_argument("--end", args.end)
    if end <= start:
        raise UsageError("--end must be after --start")
    if args.customers < 0:
        raise UsageError("--customers must not be negative")
    if args.heavy_customer < 0:
        raise UsageError("--heavy-customer must not be negative")
    if args.engagement < 0:
        raise UsageError("--engagement must not be negative")
    events = history(
        args.customers,
        from_us(start),
        from_us(end),
        seed=args.seed,
        heavy_orders=args.heavy_customer,
        engagement=args.engagement,
    )
    try:
        if args.output == "-":
            out: Any = sys.stdout.buffer
        elif args.output.endswith(".gz"):
            out = gzip.open(args.output, "wb")  # noqa: SIM115 - closed below, stdout is not
        else:
            out = open(args.output, "wb")  # noqa: SIM115
    except OSError as error:
        raise UsageError(f"--output {args.output}: {error.strerror}") from None
    for start in range(0, len(events), 10_000):  # not joined whole: a copy of the history
        out.write(b"".join(line + b"\n" for line in events[start : start + 10_000]))
    out.flush()
    if out is not sys.stdout.buffer:
        out.close()
    customers = args.customers + (1 if args.heavy_customer else 0)
    print(f"wrote {len(events)} events of {customers} customers", file=sys.stderr)
    return 0
