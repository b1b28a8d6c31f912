"""The faust wiring of the worker, built without a broker."""

from __future__ import annotations

import pytest
from faust.sensors.prometheus import PrometheusMonitor
from prometheus_client import CollectorRegistry

from stream.config import load_config
from stream.worker import app as worker_app
from stream.worker.metrics import WorkerMetrics
from stream.worker.monitor import QuietMonitor


@pytest.fixture
def own_registry(monkeypatch):
    """Each app registers its metrics; a registry per test keeps them apart."""
    registry = CollectorRegistry()
    monkeypatch.setattr(worker_app, "WorkerMetrics", lambda: WorkerMetrics(registry))
    return registry


@pytest.mark.parametrize(("faust_metrics", "monitor"), [(False, QuietMonitor), (True, PrometheusMonitor)])
async def test_faust_s_own_metrics_are_off_unless_asked_for_and_ours_are_served_either_way(
    own_registry, faust_metrics, monitor
):
    config = load_config(None, environ={}, overrides={"worker": {"faust_metrics": faust_metrics}})
    app, _ = worker_app.create_app(config)
    assert type(app.monitor) is monitor
    page = await app.web.views["/metrics"].get(None)
    names = {line.split()[2] for line in page.body.decode().splitlines() if line.startswith("# TYPE")}
    assert "lifecycle_events_total" in names and "lifecycle_ready" in names
    assert any(name.startswith("faust_") for name in names) is faust_metrics


@pytest.mark.parametrize(("session", "heartbeat"), [("10s", 1.0), ("60s", 3.0), ("90s", 3.0)])
def test_a_short_session_gets_heartbeats_often_enough_to_hear_of_a_rebalance_soon(
    own_registry, session, heartbeat
):
    config = load_config(None, environ={}, overrides={"worker": {"session_timeout": session}})
    app, _ = worker_app.create_app(config)
    assert app.conf.broker_heartbeat_interval == heartbeat
    assert app.conf.broker_heartbeat_interval * 3 <= app.conf.broker_session_timeout


def test_the_worker_stops_at_start_on_library_versions_its_fixes_were_not_tested_with(monkeypatch, capsys):
    from importlib import metadata

    from stream.cli import main
    from stream.worker.faust_internals import versions as faust_versions

    tested = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}
    faust_versions.check_versions(tested.__getitem__)  # the tested lines pass
    newer = {**tested, "faust-streaming": "0.16.0", "aiokafka": "0.15.1"}
    installed = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: newer.get(name) or installed(name))
    assert main(["worker"]) == 2  # before any topic is created: no broker needed
    err = capsys.readouterr().err
    assert "faust-streaming 0.16.0 (tested: 0.15.x)" in err and "aiokafka 0.15.1 (tested: 0.14.x)" in err
    assert "mode-streaming" not in err
