"""Each offline command once as users run it, in a process of its own (`python -m stream`):
the other CLI tests run it in process. The commands that need a broker run as processes in
the real-broker tests (`tests/kafka/`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.helpers import jsonl


def lifecycle(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "stream", *args], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("smoke") / "history.jsonl"
    ran = lifecycle("generate", "--customers", "200", "--seed", "4", "-o", str(path))
    assert ran.returncode == 0, ran.stderr
    return path


def test_replay_then_export_segment(history: Path, tmp_path: Path):
    states = tmp_path / "states.jsonl"
    transitions = tmp_path / "transitions.jsonl"
    ran = lifecycle("replay", str(history), "--states", str(states), "--transitions", str(transitions))
    assert ran.returncode == 0, ran.stderr
    by_state = {s["state"] for s in jsonl(states)}
    state = sorted(by_state)[0]
    exported = lifecycle("export-segment", state, "--states", str(states))
    assert exported.returncode == 0, exported.stderr
    rows = exported.stdout.decode().splitlines()
    assert len(rows) - 1 == sum(1 for s in jsonl(states) if s["state"] == state)


def test_check_and_explain(history: Path):
    checked = lifecycle("check", str(history))
    assert checked.returncode == 0, checked.stderr
    first = orjson.loads(history.read_bytes().splitlines()[0])
    explained = lifecycle("explain", first["customer_id"], str(history))
    assert explained.returncode == 0, explained.stderr
    assert first["order_id"] in explained.stdout.decode()  # the customer's first event, told


def test_report_and_model(history: Path, tmp_path: Path):
    page = tmp_path / "report.html"
    reported = lifecycle("report", str(history), "-o", str(page), "--kpis", str(tmp_path / "kpis.json"))
    assert reported.returncode == 0, reported.stderr
    assert page.read_text().lstrip().lower().startswith("<!doctype html")
    model = tmp_path / "model.json"
    fitted = lifecycle("model", "fit", str(history), "--calibration-end", "2025-06-01", "-o", str(model))
    assert fitted.returncode == 0, fitted.stderr
    scored = lifecycle("model", "score", str(history), "--model", str(model))
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.count(b"\n") > 0


def test_what_if(history: Path, tmp_path: Path):
    current, proposed = tmp_path / "current.toml", tmp_path / "proposed.toml"
    current.write_text("")
    proposed.write_text('[policy]\none_timer_window = "60d"\n')
    out = tmp_path / "diff.json"
    ran = lifecycle(
        "what-if", str(history), "--config", str(current), "--config", str(proposed), "--json", str(out)
    )
    assert ran.returncode == 0, ran.stderr
    assert orjson.loads(out.read_bytes())["changes"]["became_one_timer"]["total"][0] > 0


def test_schemas_check_and_version():
    assert lifecycle("schemas", "--check").returncode == 0
    version = lifecycle("--version")
    assert version.returncode == 0 and version.stdout.startswith(b"lifecycle ")
