"""The `lifecycle` command's edges: usage, version, `now`, and no traceback for a missing broker."""

from __future__ import annotations

from pathlib import Path

import orjson

from stream.lifecycle.instants import format_rfc3339
from tests.helpers import at, lifecycle, placed, write_events


def test_no_arguments_print_the_usage_and_exit_2():
    result = lifecycle()
    assert result.returncode == 2
    assert result.stderr.startswith("usage: lifecycle") and "replay" in result.stderr


def test_version():
    result = lifecycle("--version")
    assert result.returncode == 0 and result.stdout.startswith("lifecycle ")


def test_until_now_moves_the_clock_to_the_wall_clock(tmp_path: Path):
    source = write_events(tmp_path / "one.jsonl", [placed("ann", "a1", at(0))])
    result = lifecycle("replay", str(source), "--until", "now", "--transitions", str(tmp_path / "t.jsonl"))
    assert result.returncode == 0, result.stderr
    # an order of 2025, replayed up to now: long churned
    assert "churned 1" in result.stderr


def test_commands_that_need_kafka_say_so_in_one_line_when_it_is_unreachable(tmp_path: Path):
    config = tmp_path / "nobroker.toml"
    config.write_text('[kafka]\nbootstrap_servers = "127.0.0.1:1"\n')
    source = write_events(tmp_path / "one.jsonl", [placed("ann", "a1", at(0))])
    commands = (["tail"], ["topics", "create"], ["send", str(source)], ["rebuild"], ["rebuild", str(source)])
    for command in commands:
        result = lifecycle(*command, "--config", str(config))
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr
        assert (
            result.stderr.strip()
            .splitlines()[-1]
            .startswith("error: cannot reach Kafka at 127.0.0.1:1 (kafka.bootstrap_servers)")
        )


def test_check_validates_without_replaying_and_exits_1_on_any_reject(tmp_path: Path):
    good = write_events(tmp_path / "good.jsonl", [placed("ann", "a1", at(0)), placed("bob", "b1", at(1))])
    result = lifecycle("check", str(good))
    assert result.returncode == 0, result.stderr
    assert "2 lines: 2 valid events, 0 rejected (none)" in result.stderr
    bad = write_events(
        tmp_path / "bad.jsonl", [placed("ann", "a1", at(0))], [b"not json\n", b'{"type": "x"}\n']
    )
    result = lifecycle("check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: not JSON" in result.stderr
    assert "3 lines: 1 valid events, 2 rejected (invalid 1, not_json 1)" in result.stderr


def test_explain_tells_one_customers_events_changes_and_standing(tmp_path: Path):
    from tests.helpers import cancelled

    config = tmp_path / "segments.toml"
    config.write_text("[segments.two_plus]\norders_over = 1\n")
    events = [
        placed("ann", "a1", at(0)),
        placed("bob", "b1", at(1)),
        placed("ann", "a2", at(3)),
        cancelled("ann", "a2", at(4)),
    ]
    source = write_events(tmp_path / "orders.jsonl", events)
    result = lifecycle(
        "explain", "ann", str(source), "--config", str(config), "--until", "2025-06-01T00:00:00Z"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == [
        "event",
        "transition",
        "event",
        "transition",
        "segment",
        "event",
        "transition",
        "segment",
        "transition",
    ]
    assert "became_repeat (one_timer -> repeat), seq 2, cause order.placed" in lines[3]
    assert "left_segment two_plus" in lines[7]
    assert "bob" not in result.stdout
    assert lines[-1].startswith("now: inactive since 2025-03-31T10:00:00Z, 1 counted orders")
    assert "next deadline 2026-03-01T10:00:00Z" in lines[-1]


def test_explain_tells_a_prospects_sign_up_engagement_firings_and_pending_ones(tmp_path: Path):
    from tests.helpers import engaged, signed_up

    config = tmp_path / "triggers.toml"
    config.write_text(
        '[triggers.welcome]\non = "signed_up"\n'
        '[triggers.cart_abandoned]\non = "engaged:added_to_cart"\nafter = "1h"\nunless = ["order"]\n'
    )
    events = [signed_up("cy", at(0), event_id="s1", source="popup"), engaged("cy", "added_to_cart", at(1))]
    source = write_events(tmp_path / "events.jsonl", events)
    result = lifecycle("explain", "cy", str(source), "--config", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "event       customer.signed_up popup" in lines[0]
    assert "trigger     welcome fired, seq 1, armed by s1" in lines[1]
    assert "event       customer.engaged added_to_cart" in lines[2]
    assert lines[3].startswith("now: prospect")
    assert lines[4].startswith(f"pending: cart_abandoned fires at {format_rfc3339(at(1) + 3_600_000_000)}")


def test_export_segment_writes_the_members_of_a_state_segment_or_class_as_csv(tmp_path: Path):
    import csv

    config = tmp_path / "segments.toml"
    config.write_text('[segments.big]\nspend_over = "15 EUR"\n[classes]\norder = ["big"]\n')
    events = [
        placed("ann", "a1", at(0), 2000),
        placed("bob", "b1", at(1), 1000),
        placed("jun", "j1", at(2), 5000, currency="JPY"),
    ]
    source = write_events(tmp_path / "orders.jsonl", events)
    states = tmp_path / "states.jsonl"
    assert lifecycle("replay", str(source), "--config", str(config), "--states", str(states)).returncode == 0

    def export(group: str) -> list[dict[str, str]]:
        result = lifecycle("export-segment", group, "--states", str(states), "-o", str(tmp_path / "out.csv"))
        assert result.returncode == 0, result.stderr
        with open(tmp_path / "out.csv", newline="") as handle:
            return list(csv.DictReader(handle))

    [ann] = export("big")
    assert (ann["customer_id"], ann["segments"], ann["class"], ann["spend"]) == (
        "ann",
        "big",
        "big",
        "20.00 EUR",
    )
    assert [r["customer_id"] for r in export("class:big")] == ["ann"]
    assert sorted(r["customer_id"] for r in export("one_timer")) == ["ann", "bob", "jun"]
    assert [r["spend"] for r in export("one_timer") if r["customer_id"] == "jun"] == ["5000 JPY"]


def test_a_report_over_the_default_budget_replays_in_groups(tmp_path, monkeypatch):
    """With no --memory, the budget is half the machine's memory: beyond it, groups."""
    source = write_events(tmp_path / "orders.jsonl", [placed(f"c{n}", f"o{n}", at(n)) for n in range(20)])
    monkeypatch.setattr("stream.replay.memory.default_budget", lambda: 1)
    result = lifecycle("report", str(source), "--kpis", str(tmp_path / "k.json"))
    assert result.returncode == 0, result.stderr
    assert "report: replaying in 6 groups of partitions, 1 at a time" in result.stderr
    assert orjson.loads((tmp_path / "k.json").read_bytes())["customers"] == 20


def test_explain_tells_the_transitions_a_full_replay_gives_the_customer(tmp_path: Path):
    import orjson

    history = tmp_path / "h.jsonl"
    assert lifecycle("generate", "--customers", "300", "--seed", "4", "-o", str(history)).returncode == 0
    out = tmp_path / "t.jsonl"
    assert lifecycle("replay", str(history), "--transitions", str(out)).returncode == 0
    replayed = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    counts: dict[str, int] = {}
    for t in replayed:
        counts[t["customer_id"]] = counts.get(t["customer_id"], 0) + 1
    customer = max(counts, key=lambda c: (counts[c], c))  # the most transitions
    result = lifecycle("explain", customer, str(history))
    assert result.returncode == 0, result.stderr
    told = [
        (line.split()[0], line.split()[2])
        for line in result.stdout.splitlines()
        if line.split()[1] == "transition"
    ]
    assert told == [(t["occurred_at"], t["transition"]) for t in replayed if t["customer_id"] == customer]
    assert len(told) == counts[customer] >= 4
