"""The customer-base model: likelihoods by hand, the published CDNOW fits from the orders,
parameter recovery and predictions against customers simulated from known parameters."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from stream.config import load_config
from stream.lifecycle.instants import parse_rfc3339
from stream.model import bgnbd, gamma_gamma, simulate
from stream.model.bgnbd import BgNbd
from stream.model.gamma_gamma import GammaGamma
from stream.model.purchases import TIME_UNITS, histories
from stream.replay.driver import Replay
from tests.helpers import DATA, cdnow_events, lifecycle

CDNOW = DATA / "cdnow"


# --- likelihoods and closed forms, by hand ---------------------------------------------------


def test_bgnbd_likelihood_of_a_customer_who_never_came_back():
    # BG/NBD: x = 0 means alive throughout (no drop-out before a repeat purchase), so the
    # likelihood is the NBD's zero count: (alpha / (alpha + T)) ** r
    model = BgNbd(r=0.5, alpha=2.0, a=1.5, b=3.0)
    assert model.log_likelihood(0, 0, 10)[()] == pytest.approx(0.5 * math.log(2 / 12))


def test_mbgnbd_likelihood_of_a_customer_who_never_came_back():
    # MBG/NBD: alive with P(b / (a + b)) and then no purchase in T, or dropped out at once
    model = BgNbd(r=0.5, alpha=2.0, a=1.5, b=3.0, modified=True)
    by_hand = 3.0 / 4.5 * math.sqrt(2 / 12) + 1.5 / 4.5
    assert model.log_likelihood(0, 0, 10)[()] == pytest.approx(math.log(by_hand))


def _beta(a: float, b: float) -> float:
    return math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))


@pytest.mark.parametrize("modified", [False, True])
def test_likelihood_of_a_repeat_customer_is_the_papers_closed_form(modified: bool):
    r, alpha, a, b, x, t_x, T = 0.5, 2.0, 1.5, 3.0, 2, 5.0, 10.0
    poisson = math.exp(math.lgamma(r + x) - math.lgamma(r)) * alpha**r
    if modified:  # Batislam et al. (2007), eq. 6
        by_hand = _beta(a, b + x + 1) / _beta(a, b) * poisson / (alpha + T) ** (r + x)
        by_hand += _beta(a + 1, b + x) / _beta(a, b) * poisson / (alpha + t_x) ** (r + x)
    else:  # Fader, Hardie & Lee (2005), eq. 3
        by_hand = _beta(a, b + x) / _beta(a, b) * poisson / (alpha + T) ** (r + x)
        by_hand += _beta(a + 1, b + x - 1) / _beta(a, b) * poisson / (alpha + t_x) ** (r + x)
    model = BgNbd(r, alpha, a, b, modified=modified)
    assert model.log_likelihood(x, t_x, T)[()] == pytest.approx(math.log(by_hand))


def test_gamma_gamma_likelihood_is_the_density_of_a_mean_of_gammas():
    p, q, v, x, mean = 2.0, 3.0, 10.0, 3, 7.5
    # Fader, Hardie & Lee (2005b), eq. 3: the density of the mean of x Gamma(p, nu) values,
    # nu ~ Gamma(q, v)
    by_hand = (
        math.exp(math.lgamma(p * x + q) - math.lgamma(p * x) - math.lgamma(q))
        * v**q
        * mean ** (p * x - 1)
        * x ** (p * x)
        / (v + x * mean) ** (p * x + q)
    )
    assert GammaGamma(p, q, v).log_likelihood(x, mean)[()] == pytest.approx(math.log(by_hand))


def test_p_alive_at_chosen_points():
    bg = BgNbd(r=0.5, alpha=2.0, a=1.5, b=3.0)
    assert bg.p_alive(0, 0, 50)[()] == 1.0  # BG/NBD: no repeat purchase, no drop-out
    odds = 1.5 / (3 + 2 - 1) * ((2 + 10) / (2 + 5)) ** (0.5 + 2)
    assert bg.p_alive(2, 5, 10)[()] == pytest.approx(1 / (1 + odds))
    mbg = BgNbd(r=0.5, alpha=2.0, a=1.5, b=3.0, modified=True)
    for T in (1.0, 10.0, 50.0):  # one-timers fade
        assert mbg.p_alive(0, 0, T)[()] == pytest.approx(1 / (1 + 1.5 / 3 * ((2 + T) / 2) ** 0.5))
    assert mbg.p_alive(0, 0, 50)[()] < mbg.p_alive(0, 0, 10)[()]


def test_expected_purchases_of_the_published_cdnow_example():
    # Fader, Hardie & Lee (2005): with the CDNOW fit, a customer with 2 repeat purchases, the
    # last at 30.43 weeks, observed for 38.86, is expected to buy 1.226 times in 39 weeks
    model = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426)
    assert model.expected_purchases(39, 2, 30.43, 38.86)[()] == pytest.approx(1.226, abs=0.001)


def test_a_customer_just_after_the_first_purchase_is_expected_to_buy_as_a_new_one():
    for modified in (False, True):
        model = BgNbd(r=0.7, alpha=5.0, a=2.5, b=4.0, modified=modified)
        assert model.expected_purchases(30, 0, 0, 0)[()] == pytest.approx(
            model.expected_purchases_of_a_new_customer(30)[()]
        )


# --- against simulated customers -------------------------------------------------------------

TRUTH = {False: BgNbd(0.8, 6.0, 0.6, 2.5), True: BgNbd(0.8, 6.0, 0.6, 2.5, modified=True)}


@pytest.fixture(scope="module", params=[False, True], ids=["bgnbd", "mbgnbd"])
def simulated(request: pytest.FixtureRequest) -> tuple[BgNbd, simulate.Simulated]:
    truth = TRUTH[request.param]
    observed_for = list(np.random.default_rng(1).uniform(20, 60, 20_000))
    return truth, simulate.customers(truth, observed_for, seed=7, beyond=26)


def test_the_fit_recovers_the_parameters_it_was_simulated_from(simulated):
    truth, customers = simulated
    found = bgnbd.fit(*customers.summary(), modified=truth.modified)
    for name, true_value in truth.parameters().items():
        error = found.standard_errors[name]
        assert abs(found.model.parameters()[name] - true_value) < 3 * error, (name, found)
        assert error < 0.1 * true_value  # and the fit says so with some confidence


def _within(predicted: float, observed: np.ndarray, sigmas: float = 4) -> bool:
    return abs(predicted - observed.mean()) < sigmas * observed.std() / math.sqrt(len(observed))


def test_p_alive_averages_to_the_share_still_alive(simulated):
    truth, customers = simulated
    p_alive = truth.p_alive(*customers.summary())
    assert _within(float(p_alive.mean()), np.array(customers.alive, dtype=float))


def test_expected_purchases_average_to_the_purchases_that_came(simulated):
    truth, customers = simulated
    expected = truth.expected_purchases(26, *customers.summary())
    assert _within(float(expected.mean()), np.array(customers.purchases_after(26), dtype=float))


def test_a_new_customers_expected_purchases_are_those_simulated(simulated):
    truth, _ = simulated
    fresh = simulate.customers(truth, [26.0] * 40_000, seed=3)
    repeat_purchases = np.array(fresh.summary()[0], dtype=float)
    assert _within(float(truth.expected_purchases_of_a_new_customer(26.0)), repeat_purchases)


def test_gamma_gamma_recovers_its_parameters():
    truth = GammaGamma(p=4.0, q=3.5, v=20.0)
    customers = simulate.customers(BgNbd(2.0, 3.0, 0.5, 3.0), [52.0] * 20_000, seed=11, spend=truth)
    x, mean = [], []
    for values in customers.values or []:
        if len(values) > 1:  # repeat purchases only, as the fit takes them
            x.append(len(values) - 1)
            mean.append(float(np.mean(values[1:])))
    found = gamma_gamma.fit(x, mean)
    for name, true_value in truth.parameters().items():
        assert abs(found.model.parameters()[name] - true_value) < 3 * found.standard_errors[name], found


# --- the published CDNOW fits, from the orders ----------------------------------------------


@pytest.fixture(scope="module")
def cdnow_fit(tmp_path_factory: pytest.TempPathFactory) -> dict:
    directory = tmp_path_factory.mktemp("cdnow")
    events = cdnow_events(directory / "cdnow.jsonl")
    out = directory / "model.json"
    result = lifecycle(
        "model", "fit", str(events), "--calibration-end", "1997-09-30", "--time-unit", "week", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    return dict(orjson.loads(out.read_bytes()), events=str(events), path=str(out))


def test_the_published_cdnow_fits_are_reproduced_from_the_orders(cdnow_fit):
    # Fader, Hardie & Lee (2005), 39-week calibration: r 0.243, alpha 4.414, a 0.793,
    # b 2.426, LL -9582.4; Gamma-Gamma (2005b) p 6.25, q 3.74, v 15.44 on 946 repeat customers
    assert (cdnow_fit["customers"], cdnow_fit["repeat_customers"]) == (2357, 946)
    fit = cdnow_fit["bgnbd"]
    assert [round(fit[k], 3) for k in ("r", "alpha", "a", "b")] == [0.243, 4.414, 0.793, 2.426]
    assert fit["log_likelihood"] == pytest.approx(-9582.4, abs=0.05)
    spend = cdnow_fit["gamma_gamma"]
    assert [round(spend[k], 2) for k in ("p", "q", "v")] == [6.25, 3.74, 15.44]
    assert cdnow_fit["currency"] == "USD" and cdnow_fit["time_unit"] == "week"
    assert cdnow_fit["calibration_end"] == "1997-09-30T00:00:00Z"


def test_purchase_days_are_those_of_the_published_cdnow_summary(tmp_path):
    # the per-customer (x, t_x, T, mean repeat value) Fader and Hardie published for CDNOW,
    # against those the engine reads from the orders
    events = cdnow_events(tmp_path / "cdnow.jsonl")
    replay = Replay(load_config(None, environ={}))
    for line in events.read_bytes().splitlines():
        replay.feed(line)
    calibration_end = parse_rfc3339("1997-09-30T00:00:00Z")
    found = histories(replay.customers(), calibration_end, TIME_UNITS["week"], "USD")
    mine = {
        customer: (x, t_x, T, v)
        for customer, x, t_x, T, v in zip(
            found.customer_ids, found.x, found.t_x, found.T, found.mean_repeat_value, strict=True
        )
    }
    with (CDNOW / "cdnow_customers_summary_with_transactions.csv").open() as published:
        rows = list(csv.DictReader(published))
    assert len(rows) == len(mine) == 2357
    for row in rows:
        x, t_x, observed, value = mine[f"{int(row['ID']):04d}"]
        assert x == int(row["x"]), row
        assert t_x == pytest.approx(float(row["t_x"]), abs=0.006), row
        assert observed == pytest.approx(float(row["T"]), abs=0.006), row
        assert (value or 0.0) == pytest.approx(float(row["zbar"]), abs=0.006), row


def test_scores_rank_every_customer_by_expected_value(cdnow_fit, tmp_path):
    out = tmp_path / "scores.jsonl"
    result = lifecycle(
        "model",
        "score",
        cdnow_fit["events"],
        "--model",
        cdnow_fit["path"],
        "--until",
        "1997-09-30",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 2357
    values = [row["expected_value_365d"] for row in rows]
    assert values == sorted(values, reverse=True)
    assert all(0 < row["p_alive"] <= 1 and row["expected_orders_365d"] > 0 for row in rows)
    # the published example customer (ID 1: x 2, t_x 30.43, T 38.86) with the file's MBG/NBD
    first = next(row for row in rows if row["customer_id"] == "0001")
    mbg = cdnow_fit["mbgnbd"]
    model = BgNbd(mbg["r"], mbg["alpha"], mbg["a"], mbg["b"], modified=True)
    assert first["p_alive"] == pytest.approx(model.p_alive(2, first["t_x"], first["T"])[()])
    assert first["x"] == 2
    # its state at T, not after the rest of the history: last order 59 days before T
    assert first["state"] == "repeat"


# --- what cannot be fitted ---------------------------------------------------------------


def test_a_history_the_model_cannot_fit_is_a_clear_error(tmp_path):
    events = tmp_path / "one.jsonl"
    events.write_bytes(
        orjson.dumps(
            {
                "type": "order.placed",
                "event_id": "e1",
                "customer_id": "c1",
                "occurred_at": "2025-01-01T10:00:00Z",
                "order_id": "o1",
                "total": {"amount_minor": 1000, "currency": "EUR"},
            }
        )
        + b"\n"
    )
    result = lifecycle("model", "fit", str(events), "--calibration-end", "2025-06-01")
    assert result.returncode == 2
    assert "cannot fit a model: 1 customer(s)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_model_file_with_a_bad_parameter_names_it(tmp_path, cdnow_fit):
    broken = dict(orjson.loads(Path(cdnow_fit["path"]).read_bytes()))
    broken["mbgnbd"]["alpha"] = -1
    path = tmp_path / "model.json"
    path.write_bytes(orjson.dumps(broken))
    result = lifecycle("model", "score", cdnow_fit["events"], "--model", str(path))
    assert result.returncode == 2
    assert "mbgnbd.alpha must be a positive number" in result.stderr
