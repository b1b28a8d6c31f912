"""A fitted model (`model.json`, written by `lifecycle model fit`) and a customer's scores.

Scores at an instant t, from the customer's counted orders placed by t:
- `p_alive`: MBG/NBD's P(still a customer), which falls with time since the last purchase,
  one-timers' included;
- `expected_orders_365d`: MBG/NBD's expected purchase days in the next 365 days;
- `expected_value_365d`: that times Gamma-Gamma's expected value of a purchase for this
  customer, in the model's currency (major units).
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..lifecycle import CustomerState
from ..lifecycle.instants import DAY_US, LATEST_US
from ..lifecycle.purchase_days import purchase_days
from ..lifecycle.transitions import CustomerScores
from . import bgnbd, gamma_gamma
from .bgnbd import BgNbd
from .gamma_gamma import GammaGamma
from .purchases import TIME_UNITS, History, history

HORIZON_DAYS = 365


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Model:
    bgnbd: BgNbd
    mbgnbd: BgNbd
    gamma_gamma: GammaGamma | None
    time_unit: str
    currency: str | None
    calibration_end: str | None = None

    @property
    def unit_us(self) -> int:
        return TIME_UNITS[self.time_unit]

    def history(self, customer: CustomerState, at_us: int) -> History | None:
        return history(customer, at_us, self.unit_us, self.currency)

    def scores(self, customer: CustomerState, at_us: int) -> CustomerScores | None:
        """The customer's scores at `at_us`; None before their first counted order."""
        found = self.history(customer, at_us)
        return None if found is None else self.scores_of(found)

    def fingerprint(self) -> str:
        """Changes with any parameter: memberships on the model are then evaluated again."""
        text = repr((self.bgnbd, self.mbgnbd, self.gamma_gamma, self.time_unit, self.currency))
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def p_alive_below_from(self, customer: CustomerState, threshold: float) -> int | None:
        """The first instant (to the microsecond, no later than the true one) at which
        MBG/NBD's P(alive) is below `threshold`, from the customer's counted orders: P(alive)
        falls between purchases, with the odds of having dropped out
        a / (b + x) * ((alpha + T) / (alpha + t_x)) ** (r + x) rising in T."""
        days = purchase_days(customer)
        if not days:
            return None
        first, last = days[0][0], days[-1][0]
        model, x = self.mbgnbd, len(days) - 1
        needed = (1 - threshold) / threshold * (model.b + x) / model.a
        if needed <= 1:  # below from the last purchase on
            return last
        t_x = (last - first) / self.unit_us
        try:
            crossing = (model.alpha + t_x) * math.pow(needed, 1 / (model.r + x)) - model.alpha
        except OverflowError:  # a tiny r and threshold: further away than any lifetime
            return LATEST_US
        return self._instant(first, crossing)

    def value_at_most_from(self, customer: CustomerState, amount: float) -> int | None:
        """The first instant (no later than the true one) at which the expected value over
        the next 365 days is `amount` or less; it falls between purchases, so it is found by
        bracketing the one root."""
        days = purchase_days(customer)
        if not days or customer.last_order_at is None:
            return None
        # every order of the last purchase day counts towards its value, not only the first
        found = self.history(customer, customer.last_order_at)
        assert found is not None
        crossing: float | None = self._value_crossing(found.x, found.t_x, found.mean_repeat_value, amount)
        return days[-1][0] if crossing is None else self._instant(days[0][0], crossing)

    def _instant(self, first_us: int, units: float) -> int:
        """`first_us` plus `units` of time, floored to the microsecond, at most LATEST_US."""
        if not math.isfinite(units) or first_us + units * self.unit_us >= LATEST_US:
            return LATEST_US
        return first_us + math.floor(units * self.unit_us)

    @functools.lru_cache(maxsize=65536)  # noqa: B019 (a model lives as long as the process)
    def _value_crossing(self, x: int, t_x: float, mean_value: float | None, amount: float) -> float | None:
        """T at which the expected value falls to `amount`; None if it is there at t_x."""
        from scipy import optimize

        def above(T: float) -> float:
            value = self.scores_of(History(x, t_x, T, mean_value)).expected_value_365d
            return (value or 0.0) - amount

        if above(t_x) <= 0:
            return None
        high = t_x + 1.0
        while above(high) > 0:
            high = t_x + 2 * (high - t_x)
            if high > 1e7:  # some hundred thousand years: never, in practice
                return high
        tolerance = 1e-9 * max(1.0, high)
        root = float(optimize.brentq(above, t_x, high, xtol=tolerance))
        return max(t_x, root - 2 * tolerance)

    def scores_of(self, found: History) -> CustomerScores:
        horizon = HORIZON_DAYS * DAY_US / self.unit_us
        p_alive = float(self.mbgnbd.p_alive(found.x, found.t_x, found.T))
        orders = float(self.mbgnbd.expected_purchases(horizon, found.x, found.t_x, found.T))
        value = None
        if self.gamma_gamma is not None and self.gamma_gamma.q > 1:
            mean = found.mean_repeat_value if found.mean_repeat_value is not None else 0.0
            repeat = found.x if found.mean_repeat_value is not None else 0
            value = orders * float(self.gamma_gamma.expected_value(repeat, mean))
        return CustomerScores(p_alive, orders, value)


def load_model(path: str | Path) -> Model:
    """Read `model.json`; every problem names the file and the key."""
    try:
        document = orjson.loads(Path(path).read_bytes())
    except OSError as error:
        raise ModelFileError(f"model file {path}: {error.strerror}") from None
    except orjson.JSONDecodeError as error:
        raise ModelFileError(f"model file {path}: not JSON ({error})") from None

    def number(section: str, key: str) -> float:
        value = document.get(section, {}).get(key) if isinstance(document.get(section), dict) else None
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ModelFileError(
                f"model file {path}: {section}.{key} must be a positive number, not {value!r}"
            )
        return float(value)

    if not isinstance(document, dict):
        raise ModelFileError(f"model file {path}: not a JSON object")
    unit = document.get("time_unit")
    if unit not in TIME_UNITS:
        raise ModelFileError(
            f"model file {path}: time_unit must be one of {sorted(TIME_UNITS)}, not {unit!r}"
        )
    for name in ("bgnbd", "mbgnbd"):
        if number(name, "a") == 1.0:
            raise ModelFileError(
                f"model file {path}: {name}.a must not be exactly 1 (expected orders divide by a - 1)"
            )
    fitted = {
        name: BgNbd(**{k: number(name, k) for k in ("r", "alpha", "a", "b")}, modified=name == "mbgnbd")
        for name in ("bgnbd", "mbgnbd")
    }
    spend = None
    if document.get("gamma_gamma") is not None:
        spend = GammaGamma(**{k: number("gamma_gamma", k) for k in ("p", "q", "v")})
    currency = document.get("currency")
    if currency is not None and not isinstance(currency, str):
        raise ModelFileError(f"model file {path}: currency must be a currency code or null")
    calibration_end = document.get("calibration_end")
    return Model(
        fitted["bgnbd"],
        fitted["mbgnbd"],
        spend,
        unit,
        currency,
        calibration_end if isinstance(calibration_end, str) else None,
    )


def model_document(
    histories_fit: dict[str, Any],
    customers: int,
    repeat_customers: int,
    time_unit: str,
    calibration_end: str,
    currency: str | None,
) -> dict[str, Any]:
    """The JSON of `lifecycle model fit`."""
    return {
        **histories_fit,
        "customers": customers,
        "repeat_customers": repeat_customers,
        "time_unit": time_unit,
        "calibration_end": calibration_end,
        "currency": currency,
    }


def fit_document(fit: bgnbd.Fit | gamma_gamma.Fit) -> dict[str, Any]:
    return {
        **fit.model.parameters(),
        "log_likelihood": fit.log_likelihood,
        "standard_errors": fit.standard_errors,
    }
