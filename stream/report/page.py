"""The report: one self-contained HTML page of inline SVG plots, readable offline.

What the plots need is collected here from a replay's customers; the plots are drawn in
plots.py.
"""

from __future__ import annotations

import bisect
import html
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..lifecycle import CustomerState, Policy, State, state_at
from ..lifecycle.instants import DAY_US
from . import comparison_plots, funnel_plots, plots, purchase_plots
from .funnel import HORIZONS_DAYS


@dataclass
class PlotData:
    months: list[str] = field(default_factory=list)
    states_by_month: list[Counter[State]] = field(default_factory=list)
    days_to_second: list[float] = field(default_factory=list)
    spend: list[int] = field(default_factory=list)  # net spend per buyer, in the main currency
    segments: Counter[str] = field(default_factory=Counter)  # members at T
    classes: Counter[str] = field(default_factory=Counter)


def collect(
    customers: Iterable[CustomerState], until_us: int, policy_for: Callable[[CustomerState], Policy]
) -> PlotData:
    """What the plots need: states at every month's end up to `until_us` (as the history is
    known at `until_us`), days to the second counted order, and spend per customer."""
    histories = []
    spends: list[dict[str, int]] = []
    currencies: Counter[str] = Counter()
    segments: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    for customer in customers:
        segments.update(customer.segments)
        if customer.segment_class is not None:
            classes[customer.segment_class] += 1
        times = sorted(
            at for o in customer.orders.values() if (at := o.counted_at()) is not None and at <= until_us
        )
        if times:
            histories.append((times, policy_for(customer)))
            spends.append(customer.spend)
            currencies.update(customer.spend.keys())
    data = PlotData(segments=segments, classes=classes)
    if not histories:
        return data
    for month, end in month_ends(min(t[0] for t, _ in histories), until_us):
        counts: Counter[State] = Counter()
        for times, policy in histories:
            seen = bisect.bisect_right(times, end)  # orders placed by the month's end
            if seen:
                counts[state_at(policy, seen, times[0], times[seen - 1], end)] += 1
        data.months.append(month)
        data.states_by_month.append(counts)
    data.days_to_second = sorted((t[1] - t[0]) / DAY_US for t, _ in histories if len(t) > 1)
    if currencies:
        main = currencies.most_common(1)[0][0]
        data.spend = sorted((s.get(main, 0) for s in spends if s.get(main, 0) > 0), reverse=True)
    return data


def month_ends(first_us: int, until_us: int) -> list[tuple[str, int]]:
    """(YYYY-MM, the month's last instant or `until_us`) for every month from first to until."""
    start = datetime.fromtimestamp(first_us / 1e6, UTC)
    year, month = start.year, start.month
    ends = []
    while True:
        next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
        end = int(datetime(next_year, next_month, 1, tzinfo=UTC).timestamp() * 1e6) - 1
        ends.append((f"{year:04d}-{month:02d}", min(end, until_us)))
        if end >= until_us:
            return ends
        year, month = next_year, next_month


def render(figures: dict[str, Any], data: PlotData, window_days: float) -> str:
    """The page: the headline figures, then one plot per question, each with its one line."""
    sections = [
        _section(
            "Customers by lifecycle state, month by month",
            "Each bar is the customers at the end of a month, by state, as the history is known "
            "at the report's date.",
            plots.stacked_bars(data.months, data.states_by_month),
        ),
        _section(
            "Cohort retention",
            "Row: customers by month of first order; column k: the share who ordered again in "
            "the k-th month after.",
            plots.retention_cells(figures["cohorts"]),
        ),
        _section(
            "Second purchase: how soon",
            f"Share of second purchases made within d days of the first; the dashed line is the "
            f"one-timer window ({window_days:g} days), the dotted one the day by which 80 % had happened.",
            plots.conversion_curve(
                data.days_to_second, window_days, figures["days_to_second_purchase"]["p80"]
            ),
        ),
        _section(
            "Second purchase by cohort",
            "Each line is a month's new customers: the share who had bought again within d days of "
            "their first order (those not yet d days old count for the days seen); the dashed line "
            "is the one-timer window.",
            plots.cohort_curves(figures["conversion_curves"], window_days),
        ),
        _section(
            "What first orders lead to a second",
            "Share of customers who bought again within the window, by what their first order was; "
            "whiskers: 95 % interval; grey: fewer than 30 customers, too few to read much into.",
            plots.drivers(
                figures["second_purchase_drivers"], figures["second_purchase_within_window"]["rate"]
            ),
        ),
        _section(
            "Which window your data supports",
            "Bars: share of second purchases each candidate one-timer window would catch.",
            plots.window_bars(data.days_to_second),
        ),
        _section(
            "Revenue concentration",
            "Share of revenue (main currency) from the top x % of customers; the diagonal is an even spread.",
            plots.pareto(data.spend),
        ),
    ]
    if "second_order_contents" in figures:
        sections.append(
            _section(
                "What second purchasers buy",
                "Bars: share of second orders holding each category and SKU (top 15). Table: rows are "
                "the first order's main category, columns the second orders' categories; each cell is "
                "how much likelier that category is in the row's second orders than in all (lift; 1× "
                "is no difference); grey rows: fewer than 30 second orders.",
                purchase_plots.second_order_contents(figures["second_order_contents"]),
            )
        )
    if "cohort_value" in figures:
        sections.append(
            _section(
                "What a cohort has been worth",
                "Net revenue per customer of each month's new customers, 1 to 24 months after their "
                "first order (the most common currency); blank where the whole period is not seen yet.",
                purchase_plots.cohort_value_cells(figures["cohort_value"]),
            )
        )
    if figures.get("model"):
        sections += _model_sections(figures["model"])
    for name, measured in figures.get("experiments", {}).items():
        sections.append(_experiment_section(name, measured))
    if figures.get("funnel"):
        sections += _funnel_sections(figures["funnel"])
    if data.segments or data.classes:
        sections.append(
            _section(
                "Segments and classes",
                "Members of each configured segment and class at the report's date.",
                plots.member_bars(data.segments, data.classes),
            )
        )
    rate = figures["repeat_purchase_rate"]
    window = figures["second_purchase_within_window"]
    headline = (
        f"<p class=headline>{figures['customers']:,} customers, {figures['repeat_customers']:,} "
        f"bought twice or more ({plots.percent(rate)}); of those who have had the whole one-timer window, "
        f"{plots.percent(window['rate'])} bought again within it. "
        f"Report at {html.escape(figures['until'])}.</p>"
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Customer lifecycle report</title>"
        f"<style>{STYLE}</style></head><body><h1>Customer lifecycle report</h1>{headline}"
        + "".join(sections)
        + "</body></html>\n"
    )


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
    "h2{font-size:1.1em;margin:1.6em 0 .2em}p.what{margin:.2em 0 .6em;color:#555}"
    "p.headline{font-size:1.05em}svg{display:block}text{font-size:11px;fill:#333}"
)


def _section(title: str, what: str, svg: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2><p class=what>{html.escape(what)}</p>{svg}</section>"


def _experiment_section(name: str, measured: dict[str, Any]) -> str:
    groups = measured["groups"]
    rows = "".join(
        f"<tr><td>{group}</td><td>{g['exposed']:,}</td><td>{g['eligible']:,}</td><td>{g['converted']:,}</td>"
        f"<td>{_rate(g['rate'])}</td><td>{_rate(g['low'])}–{_rate(g['high'])}</td>"
        f"<td>{html.escape(_amounts(g['revenue_per_customer']))}</td></tr>"
        for group, g in groups.items()
    )
    table = (
        "<table><tr><th>group</th><th>exposed</th><th>eligible</th><th>converted</th><th>rate</th>"
        f"<th>95 % interval</th><th>revenue per customer</th></tr>{rows}</table>"
        f"<p><b>{html.escape(measured['sentence'][:1].upper() + measured['sentence'][1:])}.</b></p>"
    )
    eligible = {group: g["eligible"] for group, g in groups.items()}
    curves = comparison_plots.experiment_curves(measured["converted_by_day"], eligible)
    what = (
        f"Customers exposed on {measured['on']}, converted when they reached the goal ({measured['goal']}) "
        f"within {measured['within_days']:g} days; eligible: exposed at least that long before the report's "
        "date. Lines: share converted by day since the exposure."
    )
    return _section(f"Experiment {name}", what, table + curves)


def _funnel_sections(funnel: dict[str, Any]) -> list[str]:
    sections = []
    if funnel["sign_ups_by_month"]:
        sections.append(
            _section(
                "Sign-ups by month and source",
                "Customers by the month of their first sign-up, stacked by its source.",
                funnel_plots.sign_up_bars(funnel["sign_ups_by_month"]),
            )
        )
        sections.append(
            _section(
                "From sign-up to first order",
                "Of the customers who signed up before any order, the share whose first counted order "
                "came within 7, 30 and 90 days, by source (Kaplan-Meier: those signed up more recently "
                "count for the days seen); lines: 95 % intervals.",
                funnel_plots.first_order_shares(funnel["first_order_after_sign_up"], HORIZONS_DAYS),
            )
        )
    for trigger, figures in funnel["triggers"].items():
        share = figures["share"]
        ordered = (
            f"{figures['ordered_within_7d']:,} of the {figures['eligible']:,} fired for at least 7 days "
            f"before the report ordered within 7 days after their first firing: {_rate(share)} "
            f"(95 % {_rate(figures['low'])}–{_rate(figures['high'])})."
            if share is not None
            else "No customer was fired for at least 7 days before the report yet."
        )
        sections.append(
            _section(
                f"Trigger {trigger}",
                f"{figures['firings']:,} firings for {figures['customers']:,} customers; bars: firings per "
                f"ISO week. {ordered}",
                funnel_plots.week_bars(figures["firings_by_week"]),
            )
        )
    return sections


def _rate(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.1%}"


def _amounts(by_currency: dict[str, float]) -> str:
    return ", ".join(f"{amount:,.2f} {currency}" for currency, amount in by_currency.items()) or "–"


def _model_sections(model: dict[str, Any]) -> list[str]:
    sections = [
        _section(
            "Who is still a customer (model)",
            "Customers by their P(alive) at the report's date: the chance, given their own rhythm, "
            "that they have not quietly left.",
            plots.bins(model["p_alive"], lambda low, high: f"{low:.0%}–{high:.0%}"),
        )
    ]
    value = model["expected_value_365d"]
    if value is not None:
        currency = value["currency"] or ""
        sections.append(
            _section(
                "Expected value over the next year (model)",
                f"Customers by expected orders times expected order value over the next 365 days "
                f"({currency}; mean {value['mean']:.2f}); the last bar holds the top 1 %.",
                plots.bins(value, lambda low, high: f"{low:,.0f}–{high:,.0f}"),
            )
        )
    sections.append(
        _section(
            "Repeat purchases: the model against what happened",
            "Cumulative repeat purchase days, as they came (solid) and as the model expects of "
            "customers who started when they did (dashed); the line marks the calibration end.",
            plots.tracking(model["tracking"]),
        )
    )
    return sections
