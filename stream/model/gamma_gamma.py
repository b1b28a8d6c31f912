"""The Gamma-Gamma model of spend per purchase (Fader, Hardie & Lee 2005, "RFM and CLV").

A customer's purchases are worth Gamma(p, ν) each, with ν varying across customers as
Gamma(q, v): a customer's mean purchase value tells something about their next one, pulled
towards the shop's mean the fewer purchases it rests on. Fitted on repeat customers' mean
value of their repeat purchases (the first purchase is left out, as in the literature).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from .likelihood import Floats, floats, maximise


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    v: float

    def log_likelihood(self, x: ArrayLike, mean_value: ArrayLike) -> Floats:
        """Each repeat customer's log-likelihood of the mean value of their x purchases."""
        return _log_likelihood(np.array([self.p, self.q, self.v]), *_arrays(x, mean_value))

    def expected_value(self, x: ArrayLike, mean_value: ArrayLike) -> Floats:
        """Expected value of the customer's next purchase; the shop's mean where x = 0."""
        x, mean_value = _arrays(x, mean_value)
        p, q, v = self.p, self.q, self.v
        return p * (v + x * mean_value) / (p * x + q - 1)

    def parameters(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "v": self.v}


@dataclass(frozen=True)
class Fit:
    model: GammaGamma
    log_likelihood: float
    standard_errors: dict[str, float]


def fit(x: ArrayLike, mean_value: ArrayLike) -> Fit:
    """Maximum likelihood of (p, q, v) over the customers with x > 0 repeat purchases."""
    x, mean_value = _arrays(x, mean_value)
    keep = (x > 0) & (mean_value > 0)
    x, mean_value = x[keep], mean_value[keep]

    def log_likelihood(params: Floats) -> float:
        return float(np.sum(_log_likelihood(params, x, mean_value)))

    found = maximise(log_likelihood, [1.0, 2.0, max(float(np.mean(mean_value)), 1e-3)])
    errors = dict(zip("pqv", found.standard_errors, strict=True))
    return Fit(GammaGamma(*found.parameters), found.log_likelihood, errors)


def _log_likelihood(params: Floats, x: Floats, mean_value: Floats) -> Floats:
    p, q, v = params
    return floats(
        special.gammaln(p * x + q)
        - special.gammaln(p * x)
        - special.gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(mean_value)
        + p * x * np.log(x)
        - (p * x + q) * np.log(x * mean_value + v)
    )


def _arrays(x: ArrayLike, mean_value: ArrayLike) -> tuple[Floats, Floats]:
    return np.asarray(x, dtype=np.float64), np.asarray(mean_value, dtype=np.float64)
