"""Real-broker fixtures: one local Apache Kafka for the session (per test process), and a
test's own engine setup on it, stopped after the test. What the tests share beside these
is in `env.py`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.kafka.local import Broker, free_port
from tests.kafka.env import Env


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    existing = os.environ.get("LIFECYCLE_TEST_BOOTSTRAP")
    if existing:  # e.g. a broker started by hand to iterate quickly
        _, port = existing.rsplit(":", 1)
        yield Broker(int(port), tmp_path_factory.mktemp("unused"))
        return
    broker = Broker(free_port(span=2), tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def env_factory(broker: Broker, tmp_path: Path) -> Iterator[Callable[..., Env]]:
    envs: list[Env] = []

    def make(**sections: dict[str, Any]) -> Env:
        env = Env(broker, tmp_path, **sections)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.stop_all()
