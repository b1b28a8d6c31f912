"""Maximum likelihood, shared by the models: the search, and standard errors from its curvature."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

Floats = NDArray[np.float64]


def floats(values: object) -> Floats:
    """An array of floats: scipy's results typed (scipy has no type information)."""
    return np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class Estimate:
    parameters: list[float]
    log_likelihood: float
    standard_errors: list[float]  # nan where the curvature says nothing (a flat direction)


def maximise(log_likelihood: Callable[[Floats], float], start: list[float]) -> Estimate:
    """Parameters (all > 0) maximising `log_likelihood`, searched on their logarithms: a
    quasi-Newton search, then a simplex polish from where it stopped (the likelihoods are
    flat along ridges where a gradient method stops early)."""

    def negative(log_params: Floats) -> float:
        value = -log_likelihood(np.exp(log_params))
        return value if np.isfinite(value) else 1e300

    bounds = [(-12.0, 12.0)] * len(start)
    first = optimize.minimize(
        negative, np.log(start), method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-13, "gtol": 1e-9}
    )
    # tolerances relative to the likelihood's size: a sum over 100k customers is ~1e6, and
    # its rounding noise would keep an absolute tolerance from ever being met
    polished = optimize.minimize(
        negative,
        first.x,
        method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-12 * max(abs(first.fun), 1.0), "maxiter": 2000},
    )
    best = polished.x if polished.fun <= first.fun else first.x
    params = np.exp(best)
    return Estimate([float(p) for p in params], -negative(best), _standard_errors(log_likelihood, params))


def _standard_errors(log_likelihood: Callable[[Floats], float], params: Floats) -> list[float]:
    """Square roots of the diagonal of the inverse observed information (the negative
    Hessian of the log-likelihood, by central differences)."""
    n = len(params)
    steps = 1e-4 * np.maximum(np.abs(params), 1e-3)

    def at(i: int, di: int, j: int, dj: int) -> float:
        shifted = params.copy()
        shifted[i] += di * steps[i]
        shifted[j] += dj * steps[j]
        return log_likelihood(shifted)

    information = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            second = (at(i, 1, j, 1) - at(i, 1, j, -1) - at(i, -1, j, 1) + at(i, -1, j, -1)) / (
                4 * steps[i] * steps[j]
            )
            information[i, j] = information[j, i] = -second
    try:
        covariance = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return [float("nan")] * n
    return [float(np.sqrt(v)) if v > 0 else float("nan") for v in np.diag(covariance)]
