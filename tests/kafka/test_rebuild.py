"""`lifecycle rebuild`: state built from history without the worker, then a worker goes on."""

from __future__ import annotations

import pytest

from stream.lifecycle.instants import format_rfc3339
from stream.wallclock import wall_clock_us
from tests.kafka.env import (
    check_against_replay,
    check_changelog,
    check_no_offsets_skipped,
    generated,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.mark.parametrize(("jobs", "memory"), [(1, None), (2, None), (1, "1M")])
def test_a_worker_after_a_rebuild_goes_on_as_if_it_had_processed_the_history_itself(
    env_factory, jobs, memory
):
    env = env_factory(kafka={"partitions": 3})
    history = generated(env, 400, seed=43)
    expected, expected_states = env.replay(history)
    lines = history.read_bytes().splitlines(keepends=True)
    (env.directory / "history.jsonl").write_bytes(b"".join(lines[: len(lines) * 2 // 3]))
    (env.directory / "later.jsonl").write_bytes(b"".join(lines[len(lines) * 2 // 3 :]))
    history_part = str(env.directory / "history.jsonl")
    budget = ("--memory", memory) if memory else ()
    done = env.lifecycle("rebuild", "--emit-transitions", f"--jobs={jobs}", *budget, history_part)
    assert f"with {jobs} job(s)" in done.stderr.decode(), done.stderr
    if memory:  # too small for one process: the three partitions one after another
        assert "rebuild: rebuilding in 3 groups of partitions, 1 at a time" in done.stderr.decode()
    orders = env.config.topics.orders
    ends = env.end_offsets(orders)
    assert env.committed_offsets(orders) == ends  # the worker group goes on from the end
    rebuilt = env.transitions(lambda ts: len(ts) > 0, timeout=30)
    assert all(t["replayed"] for t in rebuilt)  # history mails no one

    worker = env.start_worker("after-rebuild")
    worker.wait_ready()
    env.lifecycle("send", str(env.directory / "later.jsonl"))
    # the rebuilt transitions and the worker's later ones together: the replay's, ids and all,
    # and the customer-state topic and the table's changelog as the replay leaves them
    check_against_replay(env, expected, expected_states)
    check_changelog(env, expected_states)
    check_no_offsets_skipped(env)
    assert "past the last message the state records" not in worker.output()  # state and offsets agree


def test_a_worker_restarted_on_its_own_data_after_a_rebuild_under_new_rules_goes_on_from_the_rebuild(
    env_factory,
):
    """A shop stops its worker, changes a rule and rebuilds. The worker's local store still
    holds the customers as the old rules left them, and its ticks wrote many of them after
    the history's last order, so by processing order they look later than the rebuild's.
    The restarted worker must go on from the rebuild's records all the same."""
    ticking = {"ticks": True, "tick_interval": "200ms", "tick_delay": "0s"}
    env = env_factory(kafka={"partitions": 2}, time=ticking)
    history = generated(env, 150, seed=53)
    lines = history.read_bytes().splitlines(keepends=True)
    history_part = env.directory / "history.jsonl"
    later_part = env.directory / "later.jsonl"
    history_part.write_bytes(b"".join(lines[: len(lines) * 2 // 3]))
    later_part.write_bytes(b"".join(lines[len(lines) * 2 // 3 :]))
    until_now, _ = env.replay(history_part, "--until", format_rfc3339(wall_clock_us()))
    env.lifecycle("send", str(history_part))
    worker = env.start_worker("w")
    # every deadline since the history's last order fired: the ticks wrote those customers
    env.transitions(lambda ts: len(ts) >= len(until_now), timeout=180)
    worker.stop()

    topics = {**env.sections["topics"], "transitions": env.config.topics.transitions + "-new-rules"}
    new_rules = {"one_timer_window": "45d", "at_risk_after": "75d"}
    env.reconfigure(policy=new_rules, time={"ticks": False}, topics=topics)
    expected, expected_states = env.replay(history)
    env.lifecycle("rebuild", "--emit-transitions", "--jobs=1")  # the orders topic as the worker left it
    worker = env.start_worker("w")  # the same data dir
    worker.wait_ready()
    env.lifecycle("send", str(later_part))
    check_against_replay(env, expected, expected_states)
    check_changelog(env, expected_states)
    check_no_offsets_skipped(env)


def test_a_rebuild_refuses_while_a_worker_runs(env_factory):
    env = env_factory(kafka={"partitions": 2})
    history = generated(env, 50, seed=47)
    env.lifecycle("send", str(history))
    worker = env.start_worker("running")
    worker.wait_ready()
    refused = env.lifecycle("rebuild", check=False)
    assert refused.returncode == 2
    assert f"the worker group {env.config.worker.app_id} has 1 member(s)" in refused.stderr.decode()
    assert worker.alive()
