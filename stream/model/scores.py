"""A fitted model (`model.json`, written by `lifecycle model fit`) and a customer's scores.

Scores at an instant t, from the customer's counted orders placed by t:
- `p_alive`: MBG/NBD's P(still a customer), which falls with time since the last purchase,
  one-timers' included;
- `expected_orders_365d`: MBG/NBD's expected purchase days in the next 365 days;
- `expected_value_365d`: that times Gamma-Gamma's expected value of a purchase for this
  customer, in the model's currency (major units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..lifecycle import CustomerState
from ..lifecycle.instants import DAY_US
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

    @property
    def unit_us(self) -> int:
        return TIME_UNITS[self.time_unit]

    def history(self, customer: CustomerState, at_us: int) -> History | None:
        return history(customer, at_us, self.unit_us, self.currency)

    def scores(self, customer: CustomerState, at_us: int) -> CustomerScores | None:
        """The customer's scores at `at_us`; None before their first counted order."""
        found = self.history(customer, at_us)
        return None if found is None else self.scores_of(found)

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
    return Model(fitted["bgnbd"], fitted["mbgnbd"], spend, unit, currency)


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
