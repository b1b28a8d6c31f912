"""`lifecycle explain`: one customer's story, from order files: events, transitions with their
causes, segment changes, and where the customer stands now."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from ..config import load_config
from ..inputs.messages import InvalidEvent
from ..inputs.time_order import in_time_order, line_head
from ..kafka.partitioning import partition_for
from ..lifecycle import Transition
from ..lifecycle.instants import format_rfc3339
from ..lifecycle.transitions import Change, TriggerFired
from ..replay.driver import Replay
from .common import add_arrival_order_option, add_input_options, check_readable, instant_argument, read_inputs


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "explain",
        help="one customer's events, transitions and segments, from order files",
        description="Replay the files (the customer's partition: its clock depends on the other "
        "customers of the partition) and tell one customer's story.",
    )
    parser.add_argument("customer_id", metavar="CUSTOMER_ID")
    parser.add_argument("inputs", nargs="+", metavar="INPUT")
    parser.add_argument("--until", metavar="RFC3339", help="then move the clock to this instant (or now)")
    parser.add_argument("--config", metavar="PATH")
    add_input_options(parser)
    add_arrival_order_option(parser, "replay")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    until = instant_argument("--until", args.until) if args.until else None
    check_readable(args.inputs)
    replay = Replay(config)
    wanted = args.customer_id
    # Only the customer's partition: its clock, and so the customer's story, depends on its
    # own events alone; the others' customers need no memory and no time.
    count = config.kafka.partitions
    mine = partition_for(wanted, count)
    lines: Any = (
        sourced
        for sourced in read_inputs(args)
        if (customer := line_head(sourced.line)[1]) is not None and partition_for(customer, count) == mine
    )
    if not args.arrival_order:
        lines = in_time_order(lines)
    out = sys.stdout
    for path, line in lines:
        if line.error is not None:
            continue
        changes = _feed(replay, line.raw)
        event = _event_of(wanted, line.raw)
        if event is not None:
            what = event.get("order_id") or event.get("kind") or event.get("source") or ""
            print(
                f"{event.get('occurred_at')}  event       {event.get('type')} {what} ({path}:{line.line})",
                file=out,
            )
        _print_changes(out, wanted, changes)
    if until is not None:
        _print_changes(out, wanted, replay.advance(until))
    _print_standing(out, replay, wanted)
    return 0


def _event_of(customer_id: str, raw: bytes) -> dict[str, Any] | None:
    """The event as a dict when it is the customer's (the byte test spares most decoding)."""
    if customer_id.encode() not in raw:
        return None
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and event.get("customer_id") == customer_id else None


def _feed(replay: Replay, raw: bytes) -> list[Change]:
    try:
        return replay.feed(raw)
    except InvalidEvent:
        return []


def _print_changes(out: Any, wanted: str, changes: list[Change]) -> None:
    for change in changes:
        if change.customer_id != wanted:
            continue
        when = change.occurred_at.isoformat().replace("+00:00", "Z")
        if isinstance(change, TriggerFired):
            fired = f"trigger     {change.trigger} fired, seq {change.seq}, armed by {change.cause_event_id}"
            print(f"{when}  {fired}", file=out)
            continue
        cause = change.cause + (f" {change.cause_event_id}" if change.cause_event_id else "")
        if isinstance(change, Transition):
            what = f"transition  {change.transition} ({change.from_state} -> {change.to_state})"
        elif change.segment is not None:
            what = f"segment     {change.change} {change.segment}"
        else:
            what = f"class       {change.from_class or '-'} -> {change.to_class or '-'}"
        print(f"{when}  {what}, seq {change.seq}, cause {cause}", file=out)


def _print_standing(out: Any, replay: Replay, wanted: str) -> None:
    customer = next((c for c in replay.customers() if c.customer_id == wanted), None)
    if customer is None:
        print(f"{wanted}: not known (never seen, or erased)", file=out)
        return
    deadline = format_rfc3339(customer.deadline) if customer.deadline is not None else "none"
    print(
        f"now: {customer.state.value} since {format_rfc3339(customer.state_since)}, "
        f"{customer.order_count} counted orders, spend {dict(customer.spend)}, "
        f"segments {customer.segments or []}, class {customer.segment_class or '-'}, "
        f"next deadline {deadline}",
        file=out,
    )
    pending = customer.triggers.pending if customer.triggers is not None else {}
    for trigger, armed in pending.items():
        print(
            f"pending: {trigger} fires at {format_rfc3339(armed.fires_at)} (armed by {armed.cause_event_id})",
            file=out,
        )
