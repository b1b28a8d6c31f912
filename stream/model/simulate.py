"""Customers drawn from known BG/NBD, MBG/NBD and Gamma-Gamma parameters, to test the fits
against the truth they were drawn from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bgnbd import BgNbd
from .gamma_gamma import GammaGamma


@dataclass(frozen=True)
class Simulated:
    """Per customer: purchase times from the first (0.0 first), observed until T, and
    whether still alive at T; values per purchase when a spend model was given."""

    times: list[list[float]]
    T: list[float]
    alive: list[bool]
    values: list[list[float]] | None = None

    def summary(self) -> tuple[list[int], list[float], list[float]]:
        """(x, t_x, T) of every customer, from the purchases up to T."""
        seen = [[t for t in times if t <= T] for times, T in zip(self.times, self.T, strict=True)]
        return ([len(t) - 1 for t in seen], [t[-1] for t in seen], list(self.T))

    def purchases_after(self, span: float) -> list[int]:
        """Purchases in (T, T + span] of every customer (drawn with `beyond` >= span)."""
        return [sum(T < t <= T + span for t in times) for times, T in zip(self.times, self.T, strict=True)]


def customers(
    model: BgNbd,
    observed_for: list[float],
    seed: int,
    spend: GammaGamma | None = None,
    beyond: float = 0.0,
) -> Simulated:
    """One customer per entry of `observed_for` (their T), first purchase at 0. With
    `beyond`, purchases are drawn on until T + beyond (for hold-out checks); `alive` is at T."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(model.r, 1.0 / model.alpha, len(observed_for))
    dropout = rng.beta(model.a, model.b, len(observed_for))
    spend_rates = rng.gamma(spend.q, 1.0 / spend.v, len(observed_for)) if spend else None
    all_times, alive_at_T, all_values = [], [], []
    for i, T in enumerate(observed_for):
        times, t = [0.0], 0.0
        died_at = float("inf")
        if model.modified and rng.random() < dropout[i]:
            died_at = 0.0
        while died_at == float("inf"):
            t += rng.exponential(1.0 / rates[i])
            if t > T + beyond:
                break
            times.append(t)
            if rng.random() < dropout[i]:
                died_at = t
        all_times.append(times)
        alive_at_T.append(died_at > T)
        if spend_rates is not None and spend is not None:
            all_values.append(list(rng.gamma(spend.p, 1.0 / spend_rates[i], len(times))))
    return Simulated(all_times, list(observed_for), alive_at_T, all_values if spend else None)
