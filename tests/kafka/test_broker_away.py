"""The broker disappears for 30 s under a running worker, and comes back."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from stream.kafka.local import Broker
from tests.kafka.env import (
    Env,
    check_against_replay,
    check_no_offsets_skipped,
    free_port,
    generated,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]

AWAY_S = 30


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    # its own broker: the session's is shared by every other test
    broker = Broker(free_port(span=2), tmp_path_factory.mktemp("away-kafka"))
    broker.start()
    yield broker
    broker.stop()


def test_a_worker_goes_on_without_loss_after_its_broker_was_killed_for_30_s(own_broker, tmp_path):
    env = Env(own_broker, tmp_path, kafka={"partitions": 3})
    try:
        history = generated(env, 600, seed=29)
        expected, expected_states = env.replay(history)
        lines = history.read_bytes().splitlines(keepends=True)
        (tmp_path / "before.jsonl").write_bytes(b"".join(lines[: len(lines) // 2]))
        (tmp_path / "after.jsonl").write_bytes(b"".join(lines[len(lines) // 2 :]))
        env.lifecycle("send", str(tmp_path / "before.jsonl"))
        worker = env.start_worker("steady")
        env.transitions(lambda ts: len(ts) >= len(expected) // 4, timeout=180)

        pid = own_broker.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # gone without a goodbye, as a crashed or partitioned broker
        wait_for(lambda: not own_broker.serving(), 30, "the broker to be gone")
        away_until = time.monotonic() + AWAY_S
        # the outage itself is the scenario: the worker must live through all of it
        while time.monotonic() < away_until:
            assert worker.alive(), worker.output()[-3000:]
            time.sleep(1)
        own_broker.start()

        env.lifecycle("send", str(tmp_path / "after.jsonl"))
        check_against_replay(env, expected, expected_states)
        check_no_offsets_skipped(env)
        assert worker.alive(), worker.output()[-3000:]
    finally:
        env.stop_all()
