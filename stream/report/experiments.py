"""What each experiment measured (docs/experiments.md): per group, customers exposed, eligible
and converted, the rate with its Wilson interval, revenue per customer; the difference with
Newcombe's interval, the relative uplift, the sample size a test needs, both groups'
conversion curves, and one plain sentence."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from ..lifecycle import CustomerState
from ..lifecycle.experiments import Experiment, Exposure, ExposureLog
from ..lifecycle.instants import DAY_US
from ..lifecycle.money import to_major_units
from .second_purchase import wilson_interval

GROUPS = ("treatment", "holdout")
Z_ALPHA = 1.959963984540054  # two-sided 5 %
Z_POWER = 0.8416212335729143  # 80 % power


def experiment_figures(
    log: ExposureLog | None, customers: Iterable[CustomerState], until_us: int
) -> dict[str, dict[str, Any]]:
    """By experiment (configuration order), the figures at `until_us`."""
    if log is None:
        return {}
    wanted = {cid for exposures in log.first.values() for cid in exposures}
    orders = {c.customer_id: counted_orders(c) for c in customers if c.customer_id in wanted}
    return {
        experiment.name: _measure(experiment, log.first[experiment.name], orders, until_us)
        for experiment in log.experiments.experiments
    }


def counted_orders(customer: CustomerState, until_us: int | None = None) -> list[tuple[int, int, str]]:
    """(placed_at, net amount, currency) of the customer's counted orders (placed by
    `until_us`, if given), by time."""
    found = []
    for order in customer.orders.values():
        at = order.counted_at()
        if at is not None and order.currency is not None and (until_us is None or at <= until_us):
            found.append((at, order.net_minor(), order.currency))
    return sorted(found)


def _measure(
    experiment: Experiment,
    exposures: Mapping[str, Exposure],
    orders: Mapping[str, list[tuple[int, int, str]]],
    until_us: int,
) -> dict[str, Any]:
    within = experiment.within_us
    groups: dict[str, dict[str, Any]] = {}
    waits: dict[str, list[tuple[int, int | None]]] = {g: [] for g in GROUPS}  # (days seen, day reached)
    for group in GROUPS:
        exposed = eligible = converted = 0
        revenue: Counter[str] = Counter()
        for customer_id, exposure in exposures.items():
            if exposure.group != group:
                continue
            exposed += 1
            t = exposure.at_us
            window = [(at, net, cur) for at, net, cur in orders.get(customer_id, ()) if t < at <= t + within]
            if experiment.goal_class is None:
                reached = window[0][0] if window else None
            else:
                reached = exposure.goal_reached_us
            # days seen, the last one in part: a goal in it counts on it (`_day`)
            seen = _day(min(until_us, t + within) - t)
            waits[group].append((seen, None if reached is None else _day(reached - t)))
            if t + within > until_us:
                continue
            eligible += 1
            converted += reached is not None
            for _, net, currency in window:
                revenue[currency] += net
        low, high = wilson_interval(converted, eligible)
        groups[group] = {
            "exposed": exposed,
            "eligible": eligible,
            "converted": converted,
            "rate": converted / eligible if eligible else None,
            "low": low if eligible else None,
            "high": high if eligible else None,
            # in major units (12.5 EUR), net of refunds, over the eligible
            "revenue_per_customer": {
                currency: float(to_major_units(round(total / eligible), currency))
                for currency, total in sorted(revenue.items())
            }
            if eligible
            else {},
        }
    days = math.ceil(within / DAY_US)
    figures: dict[str, Any] = {
        "on": experiment.on,
        "goal": experiment.goal,
        "within_days": within / DAY_US,
        "groups": groups,
        **_comparison(groups["treatment"], groups["holdout"]),
        "converted_by_day": {g: _curve(waits[g], days) for g in GROUPS},
    }
    figures["sentence"] = _sentence(figures)
    return figures


def _day(elapsed_us: int) -> int:
    """The day since exposure an instant falls on: 1 for the first 24 hours after it, and so
    on (0 for the exposure's own instant)."""
    return -(-elapsed_us // DAY_US)


def _comparison(treatment: dict[str, Any], holdout: dict[str, Any]) -> dict[str, Any]:
    p1, p2 = treatment["rate"], holdout["rate"]
    if p1 is None or p2 is None:
        return {"difference": None, "relative_uplift": None, "needed_per_group": None}
    d = p1 - p2
    l1, u1, l2, u2 = treatment["low"], treatment["high"], holdout["low"], holdout["high"]
    return {
        "difference": {
            "value": d,
            # Newcombe's hybrid score interval (method 10) from the two Wilson intervals
            "low": d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            "high": d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
        },
        "relative_uplift": d / p2 if p2 else None,
        "needed_per_group": needed_per_group(p1, p2),
    }


def needed_per_group(p1: float, p2: float) -> int | None:
    """Customers per group a two-sided two-proportion z-test at 5 % needs for 80 % power to
    detect p1 against p2 (None when they are equal)."""
    if p1 == p2:
        return None
    mean = (p1 + p2) / 2
    top = Z_ALPHA * math.sqrt(2 * mean * (1 - mean)) + Z_POWER * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(top**2 / (p1 - p2) ** 2)


def _curve(waits: list[tuple[int, int | None]], days: int) -> list[float | None]:
    """Share converted by day d since exposure, d = 0..days: Kaplan-Meier over customers seen
    for fewer days than the window (as the second-purchase curves); None past the longest seen."""
    if not waits:
        return [None] * (days + 1)
    leaving: Counter[int] = Counter()
    reached_on: Counter[int] = Counter()
    longest = 0
    for seen, reached in waits:
        longest = max(longest, seen)
        if reached is not None and reached <= seen:
            reached_on[reached] += 1
            leaving[reached] += 1
        else:
            leaving[seen] += 1
    waiting = len(waits) - leaving[0]
    still = 1.0
    shares: list[float | None] = [0.0]
    for day in range(1, days + 1):
        if day > longest:
            shares.append(None)
            continue
        if waiting:
            still *= 1 - reached_on[day] / waiting
        shares.append(1 - still)
        waiting -= leaving[day]
    return shares


def _sentence(figures: dict[str, Any]) -> str:
    difference = figures["difference"]
    if difference is None:
        return "no customer has been exposed and seen for the whole goal window in both groups yet"
    d, low, high = difference["value"], difference["low"], difference["high"]
    eligible = min(g["eligible"] for g in figures["groups"].values())
    if low > 0 or high < 0:
        word = "more" if d > 0 else "fewer"
        return (
            f"the action converted {abs(d) * 100:.1f} points {word} customers than holding out "
            f"(95 % interval {low * 100:+.1f} to {high * 100:+.1f} points)"
        )
    needed = figures["needed_per_group"]
    if needed is None:
        return "no detectable effect yet: both groups converted at the same rate"
    more = max(0, needed - eligible)
    return f"no detectable effect yet: about {more:,} more eligible customers per group are needed"
