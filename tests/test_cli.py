"""The `lifecycle` command's edges: usage, version, `now`, and no traceback for a missing broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import at, placed
from tests.test_replay_cli import write_events


def lifecycle(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream", *args], capture_output=True, text=True, timeout=timeout
    )


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
    for command in (["tail"], ["topics", "create"], ["send", str(source)]):
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
