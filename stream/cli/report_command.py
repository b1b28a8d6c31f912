"""`lifecycle report`: retention KPIs of a history, from the same rules as a replay."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from ..config import load_config
from ..lifecycle.instants import DAY_US
from ..replay.held import Side, customers_directory
from ..report.cohort_value import cohort_value
from ..report.experiments import experiment_figures
from ..report.funnel import funnel_figures
from ..report.kpis import kpis
from ..report.page import collect, render
from ..report.second_orders import second_order_contents
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
        "report",
        help="retention KPIs of a history: repeat rate, second purchase, cohorts (JSON)",
        description="Replays the history with the configured rules and writes the KPIs at T "
        "(docs/kpis.md defines each one).",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="JSONL/CSV files (- is stdin, .gz ok)")
    parser.add_argument("--config", metavar="PATH")
    parser.add_argument("--until", metavar="T", help="the instant T of the KPIs (default: the last event's)")
    parser.add_argument(
        "-o", "--output", metavar="PATH", help="write the report here: one HTML page, offline"
    )
    parser.add_argument("--kpis", metavar="PATH", help="write the KPIs here as JSON (- is stdout)")
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="model.json (`lifecycle model fit`): P(alive), value and tracking plots",
    )
    add_arrival_order_option(parser, "replay")
    add_memory_option(parser, "the report")
    add_input_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    until = instant_argument("--until", args.until) if args.until else None
    if args.output is None and args.kpis is None:
        raise UsageError("nothing to write: give -o report.html, --kpis kpis.json, or both")
    page_out = open_output("--output", args.output)
    kpis_out = open_output("--kpis", args.kpis)
    model = _model(args.model)
    with customers_directory() as directory:
        side, at = replayed(args, config, until, Path(directory))
        _write(side, at, model, kpis_out, page_out)
    return 0


def _write(
    side: Side, at: int, model: Model | None, kpis_out: BinaryIO | None, page_out: BinaryIO | None
) -> None:
    book = side.config.policy_book()
    figures = kpis(side.customers(), at, lambda customer: book.for_store(customer.store_id).one_timer_window)
    figures["second_order_contents"] = second_order_contents(side.customers(), at)
    figures["cohort_value"] = cohort_value(side.customers(), at)
    figures["experiments"] = experiment_figures(side.replay.exposures, side.customers(), at)
    figures["funnel"] = funnel_figures(side.replay.funnel, side.customers(), at)
    if model is not None:
        from ..report.model_figures import model_figures  # numpy: only with a model

        figures["model"] = model_figures(side.customers(), at, model)
        for cohort, expected in figures["model"].pop("expected_value_365d_by_cohort", {}).items():
            if cohort in figures["cohort_value"]:
                figures["cohort_value"][cohort]["model_expected_value_365d"] = expected
    if kpis_out is not None:
        kpis_out.write(orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n")
        kpis_out.flush()
    if page_out is not None:
        data = collect(side.customers(), at, lambda customer: book.for_store(customer.store_id))
        page_out.write(render(figures, data, book.default.one_timer_window / DAY_US).encode())
        page_out.flush()


def _model(path: str | None) -> Model | None:
    if path is None:
        return None
    from ..model.scores import ModelFileError, load_model  # numpy and scipy: only with a model

    try:
        return load_model(path)
    except ModelFileError as error:
        raise UsageError(str(error)) from None
