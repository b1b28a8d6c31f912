"""The funnel before and after the first order (docs/kpis.md): sign-ups per month by source;
the share of signed-up prospects whose first counted order came within 7, 30 and 90 days of
signing up, per source, with 95 % intervals (Kaplan-Meier where a customer has not been seen
that long yet); per trigger, firings per week and the share of the customers it fired for
who ordered within 7 days after."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from ..lifecycle import CustomerState
from ..lifecycle.instants import DAY_US, from_us, iso_week
from ..replay.funnel_log import FunnelLog
from .experiments import counted_orders
from .second_purchase import wilson_interval

HORIZONS_DAYS = (7, 30, 90)
AFTER_FIRING_DAYS = 7
ALL_SOURCES = "all"
NO_SOURCE = "not given"
Z = 1.959963984540054


def funnel_figures(log: FunnelLog, customers: Iterable[CustomerState], until_us: int) -> dict[str, Any]:
    # what the figures need of the customers in the log, not the customers: read from disk
    # (a replay within --memory), each held would be a copy of its own
    signed_up = set(log.sign_ups)
    fired_for = set().union(*log.first_firings.values())
    first_orders: dict[str, int | None] = {}
    orders: dict[str, list[tuple[int, int, str]]] = {}
    for customer in customers:
        if customer.customer_id in signed_up:
            first_orders[customer.customer_id] = customer.first_order_at
        if customer.customer_id in fired_for:
            orders[customer.customer_id] = counted_orders(customer)
    return {
        "sign_ups_by_month": _sign_ups_by_month(log, until_us),
        "first_order_after_sign_up": _first_orders(log, first_orders, until_us),
        "triggers": _triggers(log, orders, until_us),
    }


def _sign_ups_by_month(log: FunnelLog, until_us: int) -> dict[str, dict[str, int]]:
    months: dict[str, Counter[str]] = defaultdict(Counter)
    for sign_up in log.sign_ups.values():
        if sign_up.at_us > until_us:
            continue
        months[from_us(sign_up.at_us).astimezone(UTC).strftime("%Y-%m")][sign_up.source or NO_SOURCE] += 1
    return {month: dict(sorted(months[month].items())) for month in sorted(months)}


def _first_orders(
    log: FunnelLog, first_orders: dict[str, int | None], until_us: int
) -> dict[str, dict[str, Any]]:
    """Per source (and all), for each horizon: the Kaplan-Meier share of signed-up prospects
    whose first counted order came within it, its interval, and how many were seen that long."""
    waits: dict[str, list[tuple[int, int | None]]] = defaultdict(list)  # (seen, first order), µs
    for customer_id, sign_up in log.sign_ups.items():
        if sign_up.at_us > until_us:
            continue
        first = first_orders.get(customer_id)
        if first is not None and first <= sign_up.at_us:
            continue  # a customer already when they signed up: no prospect
        seen = until_us - sign_up.at_us
        reached = first - sign_up.at_us if first is not None and first <= until_us else None
        for source in (ALL_SOURCES, sign_up.source or NO_SOURCE):
            waits[source].append((seen, reached))
    ordered = sorted(waits, key=lambda s: (s != ALL_SOURCES, -len(waits[s]), s))
    return {source: _horizons(waits[source]) for source in ordered}


def _horizons(waits: list[tuple[int, int | None]]) -> dict[str, Any]:
    figures: dict[str, Any] = {"prospects": len(waits)}
    for days in HORIZONS_DAYS:
        horizon = days * DAY_US
        share, low, high = kaplan_meier_share(waits, horizon)
        figures[f"{days}d"] = {
            "share": share,
            "low": low,
            "high": high,
            "seen_whole": sum(1 for seen, _ in waits if seen >= horizon),
            "ordered": sum(1 for _, reached in waits if reached is not None and reached <= horizon),
        }
    return figures


def kaplan_meier_share(
    waits: list[tuple[int, int | None]], horizon: int
) -> tuple[float | None, float | None, float | None]:
    """The share who reached the event by `horizon` (1 - S(horizon)), customers seen for less
    than `horizon` counted for the time seen; with a 95 % interval from Greenwood's variance
    on the log-log scale (inside [0, 1]). None when no one is at risk."""
    if not waits:
        return None, None, None
    events: Counter[int] = Counter()
    leaving: Counter[int] = Counter()
    for seen, reached in waits:
        if reached is not None and reached <= min(seen, horizon):
            events[reached] += 1
            leaving[reached] += 1
        else:
            leaving[min(seen, horizon + 1)] += 1
    at_risk = len(waits)
    survival, greenwood = 1.0, 0.0
    last_at_risk = at_risk
    for instant in sorted(leaving):
        if instant > horizon:
            break
        died = events[instant]
        if died and at_risk:
            last_at_risk = at_risk
            survival *= 1 - died / at_risk
            if at_risk > died:
                greenwood += died / (at_risk * (at_risk - died))
        at_risk -= leaving[instant]
    if survival >= 1.0:
        # no order yet: the exact upper bound for none among those seen the whole horizon
        # (none seen that long: nothing is known)
        seen_whole = sum(1 for seen, _ in waits if seen >= horizon)
        return 0.0, 0.0, 1 - 0.025 ** (1 / seen_whole) if seen_whole else 1.0
    if survival <= 0.0:
        # everyone left at the last order ordered: the mirror of that bound, for those
        return 1.0, 0.025 ** (1 / last_at_risk), 1.0
    spread = Z * math.sqrt(greenwood) / abs(math.log(survival))
    low_survival, high_survival = survival ** math.exp(spread), survival ** math.exp(-spread)
    return 1 - survival, 1 - high_survival, 1 - low_survival


def _triggers(
    log: FunnelLog, orders_of: dict[str, list[tuple[int, int, str]]], until_us: int
) -> dict[str, dict[str, Any]]:
    after = AFTER_FIRING_DAYS * DAY_US
    figures: dict[str, dict[str, Any]] = {}
    for trigger in sorted(log.firings):
        instants = [at for at in log.firings[trigger] if at <= until_us]
        if not instants:
            continue
        weeks = Counter(iso_week(from_us(at)) for at in instants)
        first = {cid: at for cid, at in log.first_firings.get(trigger, {}).items() if at <= until_us}
        eligible = ordered = 0
        for customer_id, fired_at in first.items():
            if fired_at + after > until_us:
                continue
            eligible += 1
            orders = orders_of.get(customer_id, [])
            ordered += any(fired_at < at <= fired_at + after for at, _, _ in orders)
        low, high = wilson_interval(ordered, eligible)
        figures[trigger] = {
            "firings": sum(weeks.values()),
            "firings_by_week": dict(sorted(weeks.items())),
            "customers": len(first),
            "eligible": eligible,
            "ordered_within_7d": ordered,
            "share": ordered / eligible if eligible else None,
            "low": low if eligible else None,
            "high": high if eligible else None,
        }
    return figures
