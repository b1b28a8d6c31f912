"""Deployment files, checked by the real tools."""

import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is not installed; `make test` installs Debian's prometheus package"
    return found


def test_alert_rules_are_valid(promtool):
    result = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"], cwd=DEPLOY / "prometheus", capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 rules found" in result.stdout


def test_alert_rules_fire_as_their_unit_tests_say(promtool):
    result = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml"],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
