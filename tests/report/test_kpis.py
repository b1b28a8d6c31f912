"""`lifecycle report --kpis`: every KPI on a small history, the expected figures worked out by hand."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.lifecycle.instants import DAY_US, format_rfc3339
from stream.report.second_purchase import conversion_curves
from tests.helpers import MODEL, at, cancelled, erased, lifecycle, placed, write_events


# T0 is 2025-03-01 10:00 UTC, the one-timer window 30 days (the default); T is day 60,
# 2025-04-30 10:00 UTC.
def _items(*lines: tuple[int, int, str]) -> list[dict]:
    return [
        {"sku": f"s{i}", "qty": qty, "unit_minor": unit, "category": category}
        for i, (qty, unit, category) in enumerate(lines)
    ]


HISTORY = [
    # what the first orders were, for the drivers: amounts 10, 50, 20, 30, 40 EUR
    placed(
        "ann",
        "a1",
        at(0),
        1000,
        payment_method="card",
        coupon="WELCOME",
        channel="web",
        items=_items((1, 600, "shoes"), (2, 200, "socks")),
    ),
    placed("ann", "a2", at(10)),  # second order on day 10: within the window
    placed("bob", "b1", at(0), 5000, payment_method="card", channel="app", items=_items((1, 5000, "coats"))),
    placed("bob", "b2", at(0.125)),  # the same day, three hours later
    placed(
        "cid",
        "c1",
        at(0),
        2000,
        payment_method="paypal",
        coupon="WELCOME",
        channel="web",
        items=_items((3, 500, "socks"), (1, 500, "shoes")),
    ),
    placed("cid", "c2", at(40)),  # day 40 (April 10): after the window
    placed("dan", "d1", at(5), 3000, payment_method="paypal"),
    placed("dan", "d2", at(8)),
    cancelled("dan", "d2", at(9)),  # his second order stops counting
    placed("eve", "e1", at(2)),
    erased("eve", at(3)),  # gone: no customer at all
    placed("fay", "f1", at(50), payment_method="invoice"),  # April's cohort; not yet a window before T
    placed("gus", "g1", at(20), 4000, payment_method="card", channel="web", items=_items((1, 4000, "shoes"))),
    placed("gus", "g2", at(45)),  # 25 days later (April 15): within the window
]


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict:
    directory = tmp_path_factory.mktemp("kpis")
    history = write_events(directory / "history.jsonl", HISTORY)
    out = directory / "kpis.json"
    result = lifecycle("report", str(history), "--kpis", str(out), "--until", format_rfc3339(at(60)))
    assert result.returncode == 0, result.stderr
    return dict(orjson.loads(out.read_bytes()))


def test_customers_and_the_repeat_purchase_rate(figures):
    # ann, bob, cid, dan, fay and gus have a counted order; eve was erased
    assert figures["customers"] == 6
    assert figures["repeat_customers"] == 4  # ann, bob, cid, gus; dan's second was cancelled
    assert figures["repeat_purchase_rate"] == pytest.approx(4 / 6)


def test_second_purchase_within_the_window(figures):
    # eligible: first order by day 30 (ann, bob, cid, dan, gus); converted: ann, bob, gus
    assert figures["second_purchase_within_window"] == {"eligible": 5, "converted": 3, "rate": 0.6}


def test_days_to_the_second_purchase(figures):
    # 0.125 (bob), 10 (ann), 25 (gus), 40 (cid); linear between ranks
    days = figures["days_to_second_purchase"]
    assert days["p25"] == pytest.approx(0.125 + (10 - 0.125) * 0.75)
    assert days["median"] == pytest.approx(17.5)
    assert days["p75"] == pytest.approx(28.75)
    assert days["p80"] == pytest.approx(31.0)


def test_states_at_T(figures):
    # repeat: ann (last order 50 days before T, under the 60 of at_risk_after), bob, cid, gus;
    # dan one counted order 55 days before T: inactive; fay's 10 days before: one-timer
    assert figures["states"] == {"inactive": 1, "one_timer": 1, "repeat": 4}


def test_cohorts_by_month_of_the_first_order(figures):
    assert figures["cohorts"] == {
        # cid and gus bought again in April, the first month after March
        "2025-03": {"customers": 5, "converted_within_window": 3, "retention": {"1": 0.4}},
        "2025-04": {"customers": 1, "converted_within_window": 0, "retention": {}},
    }


def _groups(figures: dict, dimension: str) -> list[tuple[str, int, int]]:
    return [
        (g["value"], g["eligible"], g["converted"]) for g in figures["second_purchase_drivers"][dimension]
    ]


def test_second_purchase_drivers_group_the_eligible_by_their_first_order(figures):
    # eligible: ann, bob, gus (converted), cid, dan (not); fay's invoice is not a window old
    assert _groups(figures, "payment_method") == [("card", 3, 3), ("paypal", 2, 0)]
    assert _groups(figures, "coupon") == [("no coupon", 3, 2), ("coupon", 2, 1)]
    # equal counts in name order; dan's order names no channel
    assert _groups(figures, "channel") == [("web", 3, 2), ("(not given)", 1, 0), ("app", 1, 1)]
    # the category spent most on: ann 6 EUR of shoes against 4 of socks, cid 15 of socks
    assert _groups(figures, "category") == [
        ("shoes", 2, 2),
        ("(not given)", 1, 0),
        ("coats", 1, 1),
        ("socks", 1, 0),
    ]
    # quartile cuts of 10, 20, 30, 40, 50 EUR at the 2nd, 3rd and 4th values
    assert _groups(figures, "value_band") == [
        ("1: under 20.00 EUR", 1, 1),
        ("2: 20.00 to 30.00 EUR", 1, 0),
        ("3: 30.00 to 40.00 EUR", 1, 0),
        ("4: 40.00 EUR and over", 2, 2),
    ]


def test_driver_rates_carry_a_wilson_interval_and_flag_small_groups(figures):
    card = figures["second_purchase_drivers"]["payment_method"][0]
    assert card["rate"] == 1.0
    # the 95 % Wilson interval of 3 out of 3 is [0.4385, 1] (published tables)
    assert card["low"] == pytest.approx(0.4385, abs=1e-4)
    assert card["high"] == 1.0
    assert card["few"] is True  # 3 customers say little
    paypal = figures["second_purchase_drivers"]["payment_method"][1]
    assert paypal["low"] == 0.0
    assert paypal["high"] == pytest.approx(0.6576, abs=1e-4)  # 0 out of 2


def test_conversion_curves_by_cohort(figures):
    march = figures["conversion_curves"]["2025-03"]
    assert march["customers"] == 5
    shares = march["converted_by_day"]
    assert len(shares) == 181  # days 0 to 180
    assert shares[0] == 0.0
    assert shares[1] == pytest.approx(1 / 5)  # bob, three hours after his first order
    assert shares[10] == pytest.approx(1 / 5)  # ann's second is on day 10, not before it
    assert shares[11] == pytest.approx(2 / 5)
    assert shares[26] == pytest.approx(3 / 5)  # gus on day 25
    # day 41: gus, first order 40 days before T, bought on day 25; of the two still waiting
    # and seen that long (cid, dan), cid buys: 1 - (4/5 * 3/4 * 2/3 * 1/2) (Kaplan-Meier)
    assert shares[41] == pytest.approx(0.8)
    assert shares[60] == pytest.approx(0.8)  # dan, 55 days old, leaves without buying
    assert shares[61] is None  # nobody is older than 60 days
    april = figures["conversion_curves"]["2025-04"]["converted_by_day"]
    assert april[10] == 0.0 and april[11] is None  # fay, 10 days old


def test_a_history_without_events_has_no_instant_to_report_at(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = lifecycle("report", str(empty), "--kpis", str(tmp_path / "k.json"))
    assert result.returncode == 2
    assert "give --until" in result.stderr


@given(st.lists(st.one_of(st.none(), st.integers(0, 200 * DAY_US)), min_size=1, max_size=40))
def test_a_curve_without_censoring_is_the_plain_share(seconds_after_first):
    # every customer's first order is more than 180 days before T: nobody is cut short
    until = 400 * DAY_US
    history = [("2025-01", 0, None if s is None else s) for s in seconds_after_first]
    shares = conversion_curves(history, until, 180)["2025-01"]["converted_by_day"]
    for day in (0, 1, 7, 30, 180):
        plain = sum(1 for s in seconds_after_first if s is not None and s < day * DAY_US)
        assert shares[day] == pytest.approx(plain / len(seconds_after_first))


def test_model_figures_count_repeat_purchase_days_as_they_came(tmp_path: Path):
    model = tmp_path / "model.json"
    model.write_bytes(orjson.dumps(MODEL))
    history = write_events(tmp_path / "history.jsonl", HISTORY)
    out = tmp_path / "kpis.json"
    result = lifecycle(
        "report", str(history), "--kpis", str(out), "--until", format_rfc3339(at(60)), "--model", str(model)
    )
    assert result.returncode == 0, result.stderr
    everything = orjson.loads(out.read_bytes())
    figures = everything["model"]
    assert figures["customers"] == 6
    # the model's expected value per cohort, beside what the cohort has been worth: weighted
    # by the cohorts' sizes, the means are everybody's
    cohorts = everything["cohort_value"].values()
    expected = [c["model_expected_value_365d"] for c in cohorts]
    assert {e["currency"] for e in expected} == {MODEL["currency"]}
    weighted = sum(e["mean"] * c["customers"] for e, c in zip(expected, cohorts, strict=True))
    assert weighted / sum(c["customers"] for c in cohorts) == pytest.approx(
        figures["expected_value_365d"]["mean"]
    )
    assert sum(figures["p_alive"]["customers"]) == 6
    tracking = figures["tracking"]
    assert tracking["months"] == ["2025-03", "2025-04"]
    # repeat purchase days: ann's on day 10 in March; bob's second order is on his first
    # order's day (not a repeat purchase day); cid's and gus's in April; dan's was cancelled
    assert tracking["actual"] == [1, 3]
    assert 0 < tracking["predicted"][0] < tracking["predicted"][1]
