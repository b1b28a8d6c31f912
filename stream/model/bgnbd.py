"""BG/NBD and MBG/NBD: repeat purchases while alive, and the chance of having dropped out.

While alive a customer makes purchases at rate λ (a Poisson process); λ varies across
customers as Gamma(r, α). After each repeat purchase a customer drops out with probability
p, which varies as Beta(a, b) (BG/NBD, Fader, Hardie & Lee 2005). MBG/NBD (Batislam, Denizel
& Filiztekin 2007) lets the customer drop out right after the first purchase too: a customer
who never came back is then not assumed alive, and P(alive) falls with time for one-timers,
who are most of a shop's customers.

A customer's history is (x, t_x, T): x repeat purchases, the last at t_x, observed for T,
all measured from the first purchase in the model's time unit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from .likelihood import Floats, floats, maximise


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    modified: bool = False  # MBG/NBD

    def log_likelihood(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Floats:
        """Each customer's log-likelihood of their (x, t_x, T)."""
        return _log_likelihood(
            np.array([self.r, self.alpha, self.a, self.b]), *_arrays(x, t_x, T), self.modified
        )

    def p_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Floats:
        """P(the customer has not dropped out by T | x, t_x, T)."""
        x, t_x, T = _arrays(x, t_x, T)
        return 1.0 / (1.0 + np.exp(self._log_odds_dead(x, t_x, T)))

    def expected_purchases(self, t: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Floats:
        """Expected purchases in (T, T + t] given the history (x, t_x, T)."""
        x, t_x, T = _arrays(x, t_x, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        shift = 0.0 if self.modified else -1.0  # MBG/NBD: one more chance to drop out
        hyper = special.hyp2f1(r + x, b + x + 1 + shift, a + b + x + shift, t / (alpha + T + t))
        alive_sum = (
            (a + b + x + shift) / (a - 1) * (1 - np.power((alpha + T) / (alpha + T + t), r + x) * hyper)
        )
        return floats(alive_sum * self.p_alive(x, t_x, T))

    def expected_purchases_of_a_new_customer(self, t: ArrayLike) -> Floats:
        """E[X(t)]: repeat purchases within t of a first purchase (MBG/NBD: of a customer
        who may drop out at once)."""
        t = np.asarray(t, dtype=np.float64)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        if self.modified:
            hyper = special.hyp2f1(r, b + 1, a + b, t / (alpha + t))
            return floats(b / (a - 1) * (1 - np.power(alpha / (alpha + t), r) * hyper))
        hyper = special.hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return floats((a + b - 1) / (a - 1) * (1 - np.power(alpha / (alpha + t), r) * hyper))

    def parameters(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if k != "modified"}

    def _log_odds_dead(self, x: Floats, t_x: Floats, T: Floats) -> Floats:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        ratio = (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        if self.modified:
            return floats(np.log(a) - np.log(b + x) + ratio)
        # BG/NBD: nobody drops out before their first repeat purchase
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = np.log(a) - np.log(b + x - 1) + ratio
        return np.where(x > 0, odds, -np.inf)


@dataclass(frozen=True)
class Fit:
    model: BgNbd
    log_likelihood: float
    standard_errors: dict[str, float]


def fit(x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, modified: bool) -> Fit:
    """Maximum likelihood of (r, alpha, a, b) over the customers' histories."""
    counts, x, t_x, T = _distinct(*_arrays(x, t_x, T))

    def log_likelihood(params: Floats) -> float:
        return float(np.dot(counts, _log_likelihood(params, x, t_x, T, modified)))

    found = maximise(log_likelihood, [1.0, max(float(np.average(T, weights=counts)), 1e-3), 1.0, 1.0])
    names = ("r", "alpha", "a", "b")
    return Fit(
        BgNbd(**dict(zip(names, found.parameters, strict=True)), modified=modified),
        found.log_likelihood,
        dict(zip(names, found.standard_errors, strict=True)),
    )


def _log_likelihood(params: Floats, x: Floats, t_x: Floats, T: Floats, modified: bool) -> Floats:
    r, alpha, a, b = params
    shift = 1.0 if modified else 0.0
    common = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.gammaln(a + b)
        + special.gammaln(b + x + shift)
        - special.gammaln(b)
        - special.gammaln(a + b + x + shift)
    )
    still_alive = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped_after_last = np.log(a) - np.log(b + x - 1 + shift) - (r + x) * np.log(alpha + t_x)
    if not modified:  # BG/NBD: no dropping out before the first repeat purchase
        dropped_after_last = np.where(x > 0, dropped_after_last, -np.inf)
    return floats(common + np.logaddexp(still_alive, dropped_after_last))


def _arrays(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[Floats, Floats, Floats]:
    return (
        np.asarray(x, dtype=np.float64),
        np.asarray(t_x, dtype=np.float64),
        np.asarray(T, dtype=np.float64),
    )


def _distinct(x: Floats, t_x: Floats, T: Floats) -> tuple[Floats, Floats, Floats, Floats]:
    """Identical histories once, with their counts: most customers share (0, 0, T) per cohort."""
    rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    return counts.astype(np.float64), rows[:, 0], rows[:, 1], rows[:, 2]
