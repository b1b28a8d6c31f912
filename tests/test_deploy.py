"""Deployment files, checked by the real tools."""

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@pytest.fixture(scope="module")
def promtool() -> Callable[..., str]:
    """Runs promtool in deploy/prometheus; returns its output, failing the test on an error."""
    found = shutil.which("promtool")
    assert found, "promtool is not installed; `make test` installs Debian's prometheus package"

    def run(*args: str) -> str:
        result = subprocess.run([found, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    return run


def test_alert_rules_are_valid(promtool):
    assert "8 rules found" in promtool("check", "rules", "alerts.yml")


def test_alert_rules_fire_as_their_unit_tests_say(promtool):
    promtool("test", "rules", "alerts.test.yml")


def test_dashboard_queries_use_only_metrics_the_worker_exports():
    import json
    import re

    from prometheus_client import CollectorRegistry

    from stream.worker.metrics import WorkerMetrics

    registry = CollectorRegistry()
    WorkerMetrics(registry)
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
    exported = {family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "lifecycle.json").read_text())
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert len(titles) == len(set(titles)) >= 6
    import yaml

    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    recorded = {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):  # a row has none
            for name in re.findall(r"\blifecycle_[a-z_]+", target["expr"]):
                assert name in exported, f"{panel['title']}: {name} is not exported"
            for name in re.findall(r"\blifecycle:[a-z_:0-9]+", target["expr"]):
                assert name in recorded, f"{panel['title']}: {name} is no recording rule of alerts.yml"


def compose_command() -> list[str]:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    found = shutil.which("docker-compose")
    assert found, "no Compose parser; `make test` installs Debian's docker-compose package"
    return [found]


def test_compose_file_passes_a_real_compose_parser():
    import yaml

    result = subprocess.run(
        [*compose_command(), "-f", "docker-compose.yml", "config"],
        cwd=DEPLOY.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"kafka", "worker-1", "worker-2", "feed", "prometheus", "grafana"} <= set(services)
    for worker in ("worker-1", "worker-2"):
        env = services[worker]["environment"]
        assert env["LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["LIFECYCLE_WORKER_WEB_HOST"] == "0.0.0.0"


def test_compose_prometheus_config_is_valid(promtool):
    promtool("check", "config", "prometheus.yml")


def test_compose_environment_is_a_valid_engine_config():
    import yaml

    from stream.config import load_config

    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    environment = compose["services"]["worker-1"]["environment"]
    config = load_config(None, environ=environment)
    assert config.kafka.partitions == 6 and config.worker.web_port == 6066


def test_kubernetes_manifests_parse_and_match_compose_and_the_alert_rules():
    import yaml

    documents = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "k8s" / "lifecycle.yaml").read_text())}
    assert set(documents) == {"ConfigMap", "Service", "StatefulSet", "ServiceMonitor", "PrometheusRule"}
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    assert documents["ConfigMap"]["data"] == compose["services"]["worker-1"]["environment"]
    container = documents["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"][0]["containerPort"] == int(
        documents["ConfigMap"]["data"]["LIFECYCLE_WORKER_WEB_PORT"]
    )
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    assert documents["PrometheusRule"]["spec"] == alerts
