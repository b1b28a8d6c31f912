"""`lifecycle report --kpis`: every KPI on a small history, the expected figures worked out by hand."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.lifecycle.instants import format_rfc3339
from tests.helpers import at, cancelled, erased, placed
from tests.test_cli import lifecycle
from tests.test_replay_cli import write_events

# T0 is 2025-03-01 10:00 UTC, the one-timer window 30 days (the default); T is day 60,
# 2025-04-30 10:00 UTC.
HISTORY = [
    placed("ann", "a1", at(0)),
    placed("ann", "a2", at(10)),  # second order on day 10: within the window
    placed("bob", "b1", at(0)),
    placed("bob", "b2", at(0.125)),  # the same day, three hours later
    placed("cid", "c1", at(0)),
    placed("cid", "c2", at(40)),  # day 40 (April 10): after the window
    placed("dan", "d1", at(5)),
    placed("dan", "d2", at(8)),
    cancelled("dan", "d2", at(9)),  # his second order stops counting
    placed("eve", "e1", at(2)),
    erased("eve", at(3)),  # gone: no customer at all
    placed("fay", "f1", at(50)),  # April's cohort; not yet a window before T
    placed("gus", "g1", at(20)),
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


def test_a_history_without_events_has_no_instant_to_report_at(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = lifecycle("report", str(empty), "--kpis", str(tmp_path / "k.json"))
    assert result.returncode == 2
    assert "give --until" in result.stderr
