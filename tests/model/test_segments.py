"""Segment conditions on a customer's own rhythm and the model: `overdue`, `p_alive_below`
and `expected_value_over` change membership at exact instants, worked out by hand."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.lifecycle.instants import DAY_US, format_rfc3339, parse_rfc3339
from tests.helpers import MODEL, at, lifecycle, placed, write_events

SEGMENTS = """
[segments.overdue]
overdue = 1.5
[segments.fading]
p_alive_below = 0.5
[segments.valuable]
expected_value_over = "30 EUR"
"""
HISTORY = [
    placed("bob", "b1", at(0), 2000),  # one order: P(alive) falls from 2/3
    placed("cid", "c1", at(0)),
    placed("cid", "c2", at(10)),
    placed("cid", "c3", at(20)),  # every 10 days: overdue 15 days after the last
    placed("ann", "a1", at(0), 10000),
    placed("ann", "a2", at(14), 5000),
    placed("dee", "d1", at(0), 5000),
    placed("dee", "d2", at(20, us=3_600_000_000), 1000),  # two orders on day 20: one purchase
    placed("dee", "d3", at(20, us=5 * 3_600_000_000), 30000),  # worth 310 EUR
]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model-segments")
    model = directory / "model.json"
    model.write_bytes(orjson.dumps(MODEL))
    (directory / "shop.toml").write_text(f'[kafka]\npartitions = 1\n[model]\npath = "{model}"\n{SEGMENTS}')
    write_events(directory / "history.jsonl", HISTORY)
    return directory


def _replay(shop: Path, until_us: int) -> tuple[list[dict], dict[str, dict]]:
    changes, states = shop / "changes.jsonl", shop / "states.jsonl"
    result = lifecycle(
        "replay",
        str(shop / "history.jsonl"),
        "--config",
        str(shop / "shop.toml"),
        "--until",
        format_rfc3339(until_us),
        "--segment-changes",
        str(changes),
        "--states",
        str(states),
    )
    assert result.returncode == 0, result.stderr
    records = {r["customer_id"]: r for r in map(orjson.loads, states.read_bytes().splitlines())}
    return [orjson.loads(line) for line in changes.read_bytes().splitlines()], records


def _change(changes: list[dict], customer: str, segment: str, kind: str) -> dict:
    return next(
        c for c in changes if (c["customer_id"], c["segment"], c["change"]) == (customer, segment, kind)
    )


def test_overdue_after_one_and_a_half_mean_intervals(shop):
    changes, _ = _replay(shop, at(60))
    # purchase days 0, 10, 20: mean interval 10 days; overdue once more than 15 days passed
    entered = _change(changes, "cid", "overdue", "entered_segment")
    assert parse_rfc3339(entered["occurred_at"]) == at(35) + 1
    assert entered["cause"] == "deadline"
    # two purchase days are not enough to know a rhythm
    assert not [c for c in changes if c["customer_id"] == "ann" and c["segment"] == "overdue"]


def test_p_alive_below_at_the_instant_it_falls_below(shop):
    # x 0: P(alive) = 1 / (1 + a / b * ((alpha + T) / alpha) ** r) = 0.5 where
    # ((2 + T) / 2) ** 0.5 = 2, T = 6 weeks
    changes, _ = _replay(shop, at(60))
    entered = _change(changes, "bob", "fading", "entered_segment")
    assert parse_rfc3339(entered["occurred_at"]) == at(42)
    assert entered["customer"]["p_alive"] == pytest.approx(0.5)
    _, before = _replay(shop, at(42) - 1)
    _, after = _replay(shop, at(42))
    assert "fading" not in before["bob"]["segments"] and "fading" in after["bob"]["segments"]
    assert before["bob"]["p_alive"] > 0.5


@pytest.mark.parametrize("customer", ["ann", "dee"])
def test_expected_value_over_until_it_falls_to_the_amount(shop, customer):
    changes, _ = _replay(shop, at(400))
    # a new customer is worth the shop's mean order (v p / (q - 1) = 30 EUR) times the
    # purchases expected of a new customer: over 30 EUR from the first order
    entered = _change(changes, customer, "valuable", "entered_segment")
    assert parse_rfc3339(entered["occurred_at"]) == at(0)
    left = parse_rfc3339(_change(changes, customer, "valuable", "left_segment")["occurred_at"])
    assert at(20) < left < at(400)
    _, before = _replay(shop, left - 1)
    _, after = _replay(shop, left)
    assert "valuable" in before[customer]["segments"] and "valuable" not in after[customer]["segments"]
    # found no later than the true instant: above the amount just before, at it (to within
    # the search's tolerance) when it is left
    assert before[customer]["expected_value_365d"] > 30
    assert after[customer]["expected_value_365d"] == pytest.approx(30, abs=1e-6)
    _, day_before = _replay(shop, left - DAY_US)
    assert day_before[customer]["expected_value_365d"] > 30


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ("p_alive_below = 0.3", "needs a fitted model: set [model] path"),
        ('expected_value_over = "30 EUR"', "needs a fitted model"),
        ("p_alive_below = 1.5", "expected a number between 0 and 1"),
        ("overdue = -1", "expected a number above 0"),
    ],
)
def test_conditions_on_the_model_are_checked_at_start(tmp_path: Path, segment: str, message: str):
    config = tmp_path / "shop.toml"
    config.write_text(f"[segments.s]\n{segment}\n")
    history = write_events(tmp_path / "history.jsonl", HISTORY)
    result = lifecycle("replay", str(history), "--config", str(config))
    assert result.returncode == 2
    assert "segments.s." in result.stderr and message in result.stderr, result.stderr


def test_a_value_condition_in_another_currency_than_the_models_is_refused(tmp_path: Path):
    model = tmp_path / "model.json"
    model.write_bytes(orjson.dumps(MODEL))
    config = tmp_path / "shop.toml"
    config.write_text(f'[model]\npath = "{model}"\n[segments.s]\nexpected_value_over = "30 USD"\n')
    history = write_events(tmp_path / "history.jsonl", HISTORY)
    result = lifecycle("replay", str(history), "--config", str(config))
    assert result.returncode == 2
    assert "segments.s.expected_value_over" in result.stderr and "in EUR, not USD" in result.stderr


def test_a_crossing_further_away_than_any_lifetime_is_a_deadline_in_the_year_9000(tmp_path: Path):
    # P(alive) 0.001 for a one-timer: some 150,000 years away with this model
    model = tmp_path / "model.json"
    model.write_bytes(orjson.dumps(MODEL))
    config = tmp_path / "shop.toml"
    config.write_text(f'[model]\npath = "{model}"\n[segments.gone]\np_alive_below = 0.001\n')
    history = write_events(tmp_path / "history.jsonl", HISTORY)
    states = tmp_path / "states.jsonl"
    # past every lifecycle deadline (churned after a year): the crossing is the next deadline
    until = format_rfc3339(at(2000))
    result = lifecycle(
        "replay", str(history), "--config", str(config), "--states", str(states), "--until", until
    )
    assert result.returncode == 0, result.stderr
    bob = next(r for r in map(orjson.loads, states.read_bytes().splitlines()) if r["customer_id"] == "bob")
    assert bob["state"] == "churned" and "gone" not in bob["segments"]
    assert bob["next_deadline_at"] == "9000-01-01T00:00:00Z"
