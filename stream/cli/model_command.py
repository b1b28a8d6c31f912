"""`lifecycle model fit` and `lifecycle model score`: the customer-base model of a history."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..config import load_config
from ..lifecycle import state_at
from ..lifecycle.instants import format_rfc3339
from ..model.purchases import TIME_UNITS  # no numpy here
from ..replay.held import Side, customers_directory
from .common import (
    UsageError,
    add_arrival_order_option,
    add_input_options,
    add_memory_option,
    instant_argument,
    open_output,
)
from .replay_command import replayed

if TYPE_CHECKING:
    from ..model.scores import Model


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "model",
        help="fit BG/NBD, MBG/NBD and Gamma-Gamma to a history; score customers with the fit",
        description="The customer-base model: how often each customer buys, whether they are "
        "still a customer, and what they spend (README, 'The customer-base model').",
    )
    jobs = parser.add_subparsers(dest="model_command", required=True, parser_class=type(parser))

    fit = jobs.add_parser(
        "fit",
        help="fit the models to the orders placed by the calibration end",
        description="Replays the history with the configured rules and fits BG/NBD and MBG/NBD "
        "(purchases by distinct UTC day) and Gamma-Gamma (value of repeat purchase days) by "
        "maximum likelihood, on the counted orders placed by the calibration end.",
    )
    _inputs(fit)
    fit.add_argument(
        "--calibration-end", required=True, metavar="T", help="RFC 3339 instant or date (its 00:00 UTC)"
    )
    fit.add_argument("--time-unit", choices=sorted(TIME_UNITS), default="week")
    fit.add_argument("--currency", metavar="CODE", help="values in this currency (default: the most common)")
    fit.add_argument("-o", "--output", metavar="PATH", help="write the model here (default: stdout)")
    fit.set_defaults(run=run_fit)

    score = jobs.add_parser(
        "score",
        help="every customer's scores at an instant, best expected value first (JSONL)",
        description="Replays the history and writes, for every customer with a counted order, "
        "P(alive), expected orders and expected value over the next 365 days at T.",
    )
    _inputs(score)
    score.add_argument("--model", required=True, metavar="PATH", help="model.json from `lifecycle model fit`")
    score.add_argument("--until", metavar="T", help="score at this instant (default: the last event's)")
    score.add_argument("-o", "--output", metavar="PATH", help="write the scores here (default: stdout)")
    score.set_defaults(run=run_score)


def _inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="JSONL/CSV files (- is stdin, .gz ok)")
    parser.add_argument("--config", metavar="PATH")
    add_arrival_order_option(parser, "replay")
    add_memory_option(parser, "the replay")
    add_input_options(parser)


def run_fit(args: argparse.Namespace) -> int:
    # numpy and scipy take half a second to import: only for the commands that need them
    from ..model import bgnbd, gamma_gamma
    from ..model.purchases import histories, main_currency
    from ..model.scores import fit_document, model_document

    config = load_config(args.config)
    calibration_end = instant_argument("--calibration-end", args.calibration_end)
    currency = args.currency.upper() if args.currency else None
    out = open_output("--output", args.output or "-")
    started = time.monotonic()
    with customers_directory() as directory:
        side, _ = replayed(args, config, None, Path(directory))
        currency = currency or main_currency(side.customers(), calibration_end)
        found = histories(side.customers(), calibration_end, TIME_UNITS[args.time_unit], currency)
    repeat = sum(1 for x in found.x if x > 0)
    if len(found.x) < 2 or repeat == 0:
        raise UsageError(
            f"cannot fit a model: {len(found.x)} customer(s) with a counted order by "
            f"{format_rfc3339(calibration_end)}, {repeat} of them with a repeat purchase day; "
            "the models need several customers and some who came back (a later --calibration-end?)"
        )
    fits: dict[str, Any] = {
        "bgnbd": fit_document(bgnbd.fit(found.x, found.t_x, found.T, modified=False)),
        "mbgnbd": fit_document(bgnbd.fit(found.x, found.t_x, found.T, modified=True)),
    }
    valued = [(x, v) for x, v in zip(found.x, found.mean_repeat_value, strict=True) if x > 0 and v]
    fits["gamma_gamma"] = (
        fit_document(gamma_gamma.fit(*zip(*valued, strict=True))) if len(valued) >= 2 else None
    )
    document = model_document(
        fits, len(found.x), repeat, args.time_unit, format_rfc3339(calibration_end), currency
    )
    out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    out.flush()
    print(
        f"fitted {len(found.x):,} customers ({repeat:,} repeat) in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


def run_score(args: argparse.Namespace) -> int:
    from ..model.scores import ModelFileError, load_model

    config = load_config(args.config)
    try:
        model = load_model(args.model)
    except ModelFileError as error:
        raise UsageError(str(error)) from None
    until = instant_argument("--until", args.until) if args.until else None
    out = open_output("--output", args.output or "-")
    with customers_directory() as directory:
        side, at = replayed(args, config, until, Path(directory))
        rows = _scored(side, at, model)
    for _, row in sorted(rows):
        out.write(row)
    out.flush()
    return 0


def _scored(side: Side, at: int, model: Model) -> list[tuple[tuple[float, float, str], bytes]]:
    """Every customer's line of scores (encoded: a decoded row holds several times the
    bytes), after its key: best expected value first, then expected orders, then id."""
    book = side.config.policy_book()
    rows = []
    for customer in side.customers():
        found = model.history(customer, at)
        if found is None:
            continue
        scores = model.scores_of(found)
        # the lifecycle state at `at`, from the orders placed by then (the replay read on)
        placed = sorted(
            placed_at
            for o in customer.orders.values()
            if (placed_at := o.counted_at()) is not None and placed_at <= at
        )
        policy = book.for_store(customer.store_id)
        state = state_at(policy, len(placed), placed[0], placed[-1], at)
        row = {
            "customer_id": customer.customer_id,
            "p_alive": scores.p_alive,
            "expected_orders_365d": scores.expected_orders_365d,
            "expected_value_365d": scores.expected_value_365d,
            "state": state.value,
            "x": found.x,
            "t_x": found.t_x,
            "T": found.T,
            "at": format_rfc3339(at),
        }
        key = (-(scores.expected_value_365d or 0.0), -scores.expected_orders_365d, customer.customer_id)
        rows.append((key, orjson.dumps(row) + b"\n"))
    return rows
