"""The report's model figures (`lifecycle report --model model.json`): how P(alive) and the
expected value spread over the customers at `T`, and the model's tracking plot: repeat
purchases as they came, month by month, against those the model expects of customers who
started when they did (Fader, Hardie & Lee 2005, figure 2)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..lifecycle import CustomerState
from ..lifecycle.instants import from_us
from ..lifecycle.purchase_days import purchase_days
from ..model.scores import Model
from .page import month_ends

P_ALIVE_BINS = 10


def model_figures(customers: Iterable[CustomerState], until_us: int, model: Model) -> dict[str, Any]:
    p_alive: list[float] = []
    values: list[float] = []
    firsts: list[int] = []
    repeats: list[int] = []  # times of every repeat purchase day
    by_cohort: dict[str, list[float]] = {}  # expected values by month of the first purchase
    for customer in customers:
        days = purchase_days(customer, until_us)
        if not days:
            continue
        found = model.history(customer, until_us)
        assert found is not None
        scores = model.scores_of(found)
        p_alive.append(scores.p_alive)
        if scores.expected_value_365d is not None:
            values.append(scores.expected_value_365d)
            by_cohort.setdefault(from_us(days[0][0]).strftime("%Y-%m"), []).append(scores.expected_value_365d)
        firsts.append(days[0][0])
        repeats.extend(day for day, _ in days[1:])
    if not firsts:
        return {}
    return {
        "customers": len(p_alive),
        "p_alive": _histogram(p_alive, [i / P_ALIVE_BINS for i in range(P_ALIVE_BINS + 1)]),
        "expected_value_365d": _value_histogram(values, model.currency),
        "tracking": _tracking(firsts, repeats, until_us, model),
        # the mean per cohort, in the model's currency: `cohort_value` shows it beside the actual
        "expected_value_365d_by_cohort": {
            cohort: {"currency": model.currency, "mean": float(np.mean(found))}
            for cohort, found in sorted(by_cohort.items())
        },
    }


def _histogram(values: list[float], edges: list[float]) -> dict[str, Any]:
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": edges, "customers": [int(c) for c in counts]}


def _value_histogram(values: list[float], currency: str | None) -> dict[str, Any] | None:
    if not values:
        return None
    top = float(np.percentile(values, 99)) or 1.0
    edges = [top * i / 12 for i in range(13)]
    clipped = [min(v, top) for v in values]  # the last bar holds the top 1 %
    return {**_histogram(clipped, edges), "currency": currency, "mean": float(np.mean(values))}


def _tracking(firsts: list[int], repeats: list[int], until_us: int, model: Model) -> dict[str, Any]:
    """Cumulative repeat purchase days at every month's end: actual, and expected from each
    customer's first purchase on (MBG/NBD's E[X(t)] of a new customer, summed)."""
    ends = month_ends(min(firsts), until_us)
    starts = Counter(firsts)  # customers by the instant of their first purchase
    start_times = np.array(sorted(starts), dtype=np.float64)
    weights = np.array([starts[int(t)] for t in start_times], dtype=np.float64)
    repeat_times = np.sort(np.array(repeats, dtype=np.float64))
    actual, predicted = [], []
    for _, end in ends:
        actual.append(int(np.searchsorted(repeat_times, end, side="right")))
        begun = start_times <= end
        elapsed = (end - start_times[begun]) / model.unit_us
        expected = model.mbgnbd.expected_purchases_of_a_new_customer(elapsed)
        predicted.append(float(np.dot(weights[begun], expected)))
    return {
        "months": [month for month, _ in ends],
        "actual": actual,
        "predicted": predicted,
        "calibration_end": model.calibration_end,
    }
