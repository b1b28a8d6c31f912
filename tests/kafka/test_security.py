"""Secured Kafka: the worker, send and tail over SASL (PLAIN and SCRAM) on a real listener."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.kafka.local import Broker
from tests.kafka.env import Env, free_port, worker_matches_replay

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

USER, PASSWORD = "shop", "shop-secret"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(free_port(span=3), tmp_path_factory.mktemp("sasl-kafka"), sasl_users=((USER, PASSWORD),))
    broker.start()
    yield broker
    broker.stop()


def sasl_env(broker: Broker, directory: Path, mechanism: str, password: str = PASSWORD) -> Env:
    return Env(
        broker,
        directory,
        kafka={
            "bootstrap_servers": broker.sasl_bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": mechanism,
            "sasl_username": USER,
            "sasl_password": password,
            "partitions": 2,
        },
    )


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_worker_runs_over_sasl(sasl_broker, tmp_path, mechanism):
    env = sasl_env(sasl_broker, tmp_path, mechanism)
    worker, _ = worker_matches_replay(env, customers=60, seed=3)
    assert "Authentication failed" not in worker.output()


def test_wrong_password_stops_with_a_message(sasl_broker, tmp_path):
    env = sasl_env(sasl_broker, tmp_path, "SCRAM-SHA-256", password="wrong")
    result = env.lifecycle("topics", "create", check=False, timeout=120)
    assert result.returncode == 2
    assert "kafka.bootstrap_servers" in result.stderr.decode()
