"""Workers joining and leaving again and again while orders stream in: nothing lost, nothing twice."""

from __future__ import annotations

import pytest

from tests.kafka.env import (
    check_against_replay,
    check_changelog,
    check_no_offsets_skipped,
    generated,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]


def test_three_rounds_of_a_second_worker_joining_and_leaving_change_nothing(env_factory):
    env = env_factory(kafka={"partitions": 4})
    history = generated(env, 2000, seed=17)
    expected, expected_states = env.replay(history)
    lines = history.read_bytes().splitlines(keepends=True)
    rounds = 3
    size = len(lines) // (rounds + 1) + 1
    chunks = [lines[i : i + size] for i in range(0, len(lines), size)]
    for number, chunk in enumerate(chunks):
        (env.directory / f"chunk-{number}.jsonl").write_bytes(b"".join(chunk))
    env.lifecycle("send", str(env.directory / "chunk-0.jsonl"))
    first = env.start_worker("w1")
    env.transitions(lambda ts: len(ts) >= len(expected) // 10, timeout=180)
    for number in range(1, len(chunks)):
        second = env.start_worker(f"w2-{number}")
        # owning partitions first, then orders to process: both workers have work to do
        wait_for(lambda second=second: second.ready() or not second.alive(), 120, "the second worker ready")
        env.lifecycle("send", str(env.directory / f"chunk-{number}.jsonl"))
        wait_for(
            lambda second=second: "took up partition" in second.output() or not second.alive(),
            120,
            "the second worker to take up partitions",
        )
        assert second.alive(), second.output()
        second.stop()
    assert first.alive(), first.output()
    check_against_replay(env, expected, expected_states)
    check_no_offsets_skipped(env)
    check_changelog(env, expected_states)
