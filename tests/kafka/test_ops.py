"""Operations against the real things: a Prometheus server scraping a worker, and /readyz
during the recovery of a large changelog."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.parse
from collections import Counter
from pathlib import Path

import orjson
import pytest

from stream.lifecycle import State
from tests.kafka.changelog import fill_changelog
from tests.kafka.env import free_port, http_get, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


@pytest.fixture
def prometheus(tmp_path):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed; `make test` installs Debian's prometheus package"
    processes = []

    def start(target_port: int) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{RULES}']\n"  # the project's alerts and KPI recording rules
            "scrape_configs:\n  - job_name: lifecycle\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        )
        processes.append(
            subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=subprocess.DEVNULL,  # its log is not needed; readiness is polled
                stderr=subprocess.STDOUT,
            )
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(f"{url}/-/ready")[0] == 200, 60, "prometheus to be ready")
        return url

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def query(url: str, promql: str) -> dict[str, float]:
    status, body = http_get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    if status != 200:
        return {}
    result = orjson.loads(body)["data"]["result"]
    return {next(iter(r["metric"].values()), ""): float(r["value"][1]) for r in result}


def test_prometheus_sees_the_customers_and_transitions_the_replay_computes(env_factory, prometheus):
    env = env_factory(kafka={"partitions": 3})
    history = env.directory / "history.jsonl"
    env.lifecycle("generate", "--customers", "400", "--seed", "21", "--output", str(history))
    expected, expected_states = env.replay(history)
    env.lifecycle("send", str(history))
    worker = env.start_worker()
    url = prometheus(worker.port)
    want_states = {s.value: float(n) for s, n in Counter(State(s["state"]) for s in expected_states).items()}
    want_transitions = {name: float(n) for name, n in Counter(t["transition"] for t in expected).items()}
    wait_for(
        lambda: query(url, "sum by (state) (lifecycle_customers)") == want_states,
        180,
        f"PromQL customers by state to equal the replay's {want_states}",
        every=1,
    )
    wait_for(
        lambda: query(url, "sum by (transition) (lifecycle_transitions_total)") == want_transitions,
        60,
        "PromQL transition counts to equal the replay's",
        every=1,
    )
    assert list(query(url, "lifecycle_ready").values()) == [1.0]
    # live retention KPIs: buyers and one-timer outcomes as the replay has them, and the
    # recording rule's repeat purchase rate equal to the one `lifecycle report` computes
    orders = Counter(s["order_count"] for s in expected_states)
    want_buyers = {"one": float(orders[1]), "two_or_more": float(sum(n for k, n in orders.items() if k >= 2))}
    wait_for(
        lambda: query(url, "sum by (orders) (lifecycle_buyers)") == want_buyers,
        30,
        f"PromQL buyers to equal the replay's {want_buyers}",
        every=1,
    )
    outcomes = Counter(
        (t["from_state"], t["to_state"]) for t in expected if t["from_state"] == State.ONE_TIMER.value
    )
    want_outcomes = {
        "converted": float(outcomes["one_timer", "repeat"]),
        "lapsed": float(outcomes["one_timer", "inactive"]),
    }
    wait_for(
        lambda: query(url, "sum by (outcome) (lifecycle_one_timer_outcomes_total)") == want_outcomes,
        30,
        f"PromQL one-timer outcomes to equal the replay's {want_outcomes}",
        every=1,
    )
    kpis_path = env.directory / "kpis.json"
    env.lifecycle("report", str(history), "--kpis", str(kpis_path), "--arrival-order")
    kpis = orjson.loads(kpis_path.read_bytes())
    wait_for(
        lambda: (
            query(url, "sum(lifecycle:repeat_purchase_rate)").get("")
            == pytest.approx(kpis["repeat_purchase_rate"])
        ),
        60,
        f"the recorded repeat purchase rate to equal the report's {kpis['repeat_purchase_rate']}",
        every=1,
    )
    assert worker.alive()


def test_readyz_is_503_during_recovery_and_200_after(env_factory):
    env = env_factory(kafka={"partitions": 2}, worker={"store": "memory"})
    env.lifecycle("topics", "create")
    changelog = f"{env.config.worker.app_id}-customers-changelog"
    asyncio.run(fill_changelog(env.config.kafka.bootstrap_servers, changelog, 200_000, partitions=2))
    worker = env.start_worker()
    readyz = f"http://127.0.0.1:{worker.port}/readyz"
    wait_for(lambda: http_get(readyz)[0] == 503, 120, "/readyz to answer 503 while recovering", every=0.05)
    healthz = http_get(f"http://127.0.0.1:{worker.port}/healthz")
    assert healthz[0] == 200
    wait_for(lambda: http_get(readyz)[0] == 200, 300, "/readyz to answer 200 after recovery")
    assert worker.alive()
