"""The model's scores in snapshots and state records (`[model] path`), worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from stream.lifecycle.instants import format_rfc3339
from tests.helpers import MODEL, at, lifecycle, placed, write_events

# MBG/NBD r 0.5, alpha 2, a 1.5, b 3 (weeks); Gamma-Gamma p 6, q 4, v 15 (EUR)
HISTORY = [
    placed("ann", "a1", at(0), 10000),
    placed("ann", "a2", at(14), 5000),  # two weeks later: 50 EUR
    placed("bob", "b1", at(0), 2000),
]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    directory = tmp_path_factory.mktemp("scores")
    model = directory / "model.json"
    model.write_bytes(orjson.dumps(MODEL))
    config = directory / "shop.toml"
    config.write_text(f'[kafka]\npartitions = 1\n[model]\npath = "{model}"\n')
    history = write_events(directory / "history.jsonl", HISTORY)
    outputs = {name: directory / f"{name}.jsonl" for name in ("transitions", "states")}
    result = lifecycle(
        "replay",
        str(history),
        "--config",
        str(config),
        "--until",
        format_rfc3339(at(70)),
        "--transitions",
        str(outputs["transitions"]),
        "--states",
        str(outputs["states"]),
    )
    assert result.returncode == 0, result.stderr
    return {
        name: [orjson.loads(line) for line in path.read_bytes().splitlines()]
        for name, path in outputs.items()
    }


def _snapshot(replayed: dict, customer: str, transition: str) -> dict:
    return next(
        t["customer"]
        for t in replayed["transitions"]
        if t["customer_id"] == customer and t["transition"] == transition
    )


def test_a_one_timers_snapshot_at_the_first_order(replayed):
    # x 0, T 0: alive unless dropped out at once, 1 / (1 + a / b)
    assert _snapshot(replayed, "bob", "became_one_timer")["p_alive"] == pytest.approx(1 / (1 + 1.5 / 3))


def test_a_second_purchase_snapshot(replayed):
    snap = _snapshot(replayed, "ann", "became_repeat")
    # x 1, t_x = T = 2 weeks: 1 / (1 + a / (b + x))
    assert snap["p_alive"] == pytest.approx(1 / (1 + 1.5 / 4))
    # Gamma-Gamma: p (v + x m) / (p x + q - 1) with one repeat purchase of 50 EUR
    per_order = 6 * (15 + 50) / (6 + 4 - 1)
    assert snap["expected_value_365d"] == pytest.approx(snap["expected_orders_365d"] * per_order)
    assert 0 < snap["expected_orders_365d"] < 52


def test_state_records_carry_the_scores_at_the_partition_clock(replayed):
    bob = next(s for s in replayed["states"] if s["customer_id"] == "bob")
    assert bob["scores_at"] == format_rfc3339(at(70))
    # T = 10 weeks without coming back: 1 / (1 + a / b ((alpha + T) / alpha) ** r)
    assert bob["p_alive"] == pytest.approx(1 / (1 + 0.5 * math.sqrt(12 / 2)))
    # a one-timer's next purchase is worth the shop's mean, v p / (q - 1)
    assert bob["expected_value_365d"] == pytest.approx(bob["expected_orders_365d"] * 15 * 6 / 3)


def test_without_a_model_the_scores_are_null(tmp_path: Path):
    history = write_events(tmp_path / "history.jsonl", HISTORY)
    states = tmp_path / "states.jsonl"
    assert lifecycle("replay", str(history), "--states", str(states)).returncode == 0
    for record in map(orjson.loads, states.read_bytes().splitlines()):
        assert (record["p_alive"], record["scores_at"]) == (None, None)


def test_a_model_path_that_cannot_be_used_stops_at_start_naming_the_key(tmp_path: Path):
    broken = tmp_path / "model.json"
    broken.write_bytes(orjson.dumps({**MODEL, "time_unit": "fortnight"}))
    config = tmp_path / "shop.toml"
    config.write_text(f'[model]\npath = "{broken}"\n')
    history = write_events(tmp_path / "history.jsonl", HISTORY)
    result = lifecycle("replay", str(history), "--config", str(config))
    assert result.returncode == 2
    assert "model.path" in result.stderr and "time_unit" in result.stderr
