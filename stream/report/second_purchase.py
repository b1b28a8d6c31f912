"""Who buys a second time, and when: conversion by what the first order was (drivers), and
conversion curves by cohort.

Both count as `kpis.py` does: counted orders at or before `T`; a customer is *eligible* once
their first counted order is at least one one-timer window before `T`, and *converted* when
their second counted order came before first + window (docs/kpis.md).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..lifecycle.customer import OrderRecord
from ..lifecycle.instants import DAY_US
from ..lifecycle.money import to_major_units

DIMENSIONS = ("category", "payment_method", "coupon", "channel", "value_band")
MOST_GROUPS = 8  # per dimension; the rest are summed into "other"
FEW_CUSTOMERS = 30  # below this many eligible customers a group's rate is marked `few`
NOT_GIVEN = "(not given)"


@dataclass(frozen=True, slots=True)
class FirstOrder:
    """An eligible customer's first counted order, and whether a second came within the window."""

    order: OrderRecord
    converted: bool


def drivers(first_orders: list[FirstOrder]) -> dict[str, list[dict[str, Any]]]:
    """For every dimension, groups of eligible customers by their first order's value in it:
    `eligible`, `converted`, `rate`, a 95 % Wilson interval (`low`, `high`) and `few` when the
    group is too small for its rate to mean much. Largest groups first."""
    bands = _value_bands(first_orders)
    result = {}
    for dimension in DIMENSIONS:
        groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for first in first_orders:
            group = groups[_group_of(dimension, first.order, bands)]
            group[0] += 1
            group[1] += first.converted
        # value bands read in their own order, low to high; other dimensions largest first
        result[dimension] = _largest_groups(groups, by_band=dimension == "value_band")
    return result


def conversion_curves(
    firsts_and_seconds: Iterable[tuple[str, int, int | None]], until_us: int, days: int
) -> dict[str, dict[str, Any]]:
    """By cohort (`YYYY-MM` of the first counted order): `customers`, and `converted_by_day[d]`
    for d = 0..days, the share that has bought a second time within d days of the first.

    Customers whose first order is less than d days before `T` cannot be seen that far, so
    the share is a Kaplan-Meier estimate: each day, of the customers still waiting and seen
    that long, the share who bought again, chained from day to day. Without such customers
    it is the plain share; it is `null` past the oldest customer of the cohort."""
    leaving: dict[str, Counter[int]] = defaultdict(Counter)  # by the last day waiting and seen
    bought_on: dict[str, Counter[int]] = defaultdict(Counter)  # second purchases by day counted
    oldest: Counter[str] = Counter()  # days the cohort's oldest customer has been seen
    sizes: Counter[str] = Counter()
    for cohort, first, second in firsts_and_seconds:
        sizes[cohort] += 1
        seen = min((until_us - first) // DAY_US, days)
        oldest[cohort] = max(oldest[cohort], seen)
        # within d days means before first + d days: a second purchase counts from the day after
        day = None if second is None else (second - first) // DAY_US + 1
        if day is not None and day <= seen:
            bought_on[cohort][day] += 1
            leaving[cohort][day] += 1
        else:
            leaving[cohort][seen] += 1
    curves = {}
    for cohort in sorted(sizes):
        waiting = sizes[cohort] - leaving[cohort][0]
        still_waiting_share = 1.0
        shares: list[float | None] = [0.0]
        for day in range(1, days + 1):
            if day > oldest[cohort]:
                shares.append(None)
                continue
            if waiting:
                still_waiting_share *= 1 - bought_on[cohort][day] / waiting
            shares.append(1 - still_waiting_share)
            waiting -= leaving[cohort][day]
        curves[cohort] = {"customers": sizes[cohort], "converted_by_day": shares}
    return curves


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a rate: sound for small groups and rates near 0 or 1,
    where the normal approximation gives intervals outside [0, 1]."""
    if trials == 0:
        return (0.0, 1.0)
    rate = successes / trials
    spread = z * z / trials
    centre = (rate + spread / 2) / (1 + spread)
    half = z / (1 + spread) * math.sqrt(rate * (1 - rate) / trials + spread / (4 * trials))
    return (max(0.0, centre - half), min(1.0, centre + half))


def _group_of(dimension: str, order: OrderRecord, bands: _Bands | None) -> str:
    if dimension == "category":
        return main_category(order)
    if dimension == "coupon":
        return "coupon" if order.coupon else "no coupon"
    if dimension == "value_band":
        return bands.label(order) if bands else NOT_GIVEN
    value = order.payment_method if dimension == "payment_method" else order.channel
    return value or NOT_GIVEN


def main_category(order: OrderRecord) -> str:
    """The category of the line the customer spent most on (the first such line on a tie)."""
    best, best_spend = None, -1
    for item in order.items or ():
        spend = item.qty * item.unit_minor
        if item.category and spend > best_spend:
            best, best_spend = item.category, spend
    return best or NOT_GIVEN


class _Bands:
    """Quartiles of first-order value in the most common currency: four bands of about as many
    customers each, labelled with their amounts."""

    def __init__(self, currency: str, cuts: list[int]) -> None:
        self.currency, self.cuts = currency, cuts

    def label(self, order: OrderRecord) -> str:
        if order.currency != self.currency:
            return "(other currency)"
        value = order.net_minor()
        band = sum(value >= cut for cut in self.cuts)
        low = "" if band == 0 else to_major_units(self.cuts[band - 1], self.currency)
        high = "" if band == len(self.cuts) else to_major_units(self.cuts[band], self.currency)
        if not low:
            return f"{band + 1}: under {high} {self.currency}"
        if not high:
            return f"{band + 1}: {low} {self.currency} and over"
        return f"{band + 1}: {low} to {high} {self.currency}"


def _value_bands(first_orders: list[FirstOrder]) -> _Bands | None:
    currencies = Counter(f.order.currency for f in first_orders if f.order.currency)
    if not currencies:
        return None
    currency = currencies.most_common(1)[0][0]
    values = sorted(f.order.net_minor() for f in first_orders if f.order.currency == currency)
    cuts = sorted({values[len(values) * k // 4] for k in (1, 2, 3)} - {values[0]})
    return _Bands(currency, cuts)


def _largest_groups(groups: dict[str, list[int]], by_band: bool) -> list[dict[str, Any]]:
    def band_order(item: tuple[str, list[int]]) -> tuple[bool, str]:
        return (item[0].startswith("("), item[0])  # "(other currency)" after the bands

    def size_order(item: tuple[str, list[int]]) -> tuple[int, str]:
        return (-item[1][0], item[0])

    ranked = sorted(groups.items(), key=band_order if by_band else size_order)
    if len(ranked) > MOST_GROUPS:
        rest = ranked[MOST_GROUPS - 1 :]
        other = [sum(g[0] for _, g in rest), sum(g[1] for _, g in rest)]
        ranked = [*ranked[: MOST_GROUPS - 1], (f"other ({len(rest)} values)", other)]
    rows = []
    for value, (eligible, converted) in ranked:
        low, high = wilson_interval(converted, eligible)
        rows.append(
            {
                "value": value,
                "eligible": eligible,
                "converted": converted,
                "rate": converted / eligible,
                "low": low,
                "high": high,
                "few": eligible < FEW_CUSTOMERS,
            }
        )
    return rows
