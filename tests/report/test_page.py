"""`lifecycle report -o report.html`: one page that opens offline, checked in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import CHROMIUM_FLAGS, chromium_dom, lifecycle

# states by month, cohort retention, time to second purchase, curves by cohort, drivers,
# windows, revenue, second-order contents, cohort value, P(alive), expected value, the
# model's tracking, an experiment's curves, segments and classes; the funnel: sign-ups by
# month, first orders after signing up, and the preset's three triggers
PLOTS = 19
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("report")
    history = directory / "history.jsonl"
    made = lifecycle(
        "generate", "--customers", "300", "--seed", "5", "--engagement", "3", "--output", str(history)
    )
    assert made.returncode == 0, made.stderr
    out = directory / "report.html"
    # segments and classes, and an experiment: their plots too
    preset = directory / "shop.toml"
    preset.write_text(
        (REPO / "deploy" / "segments.example.toml").read_text()
        + '\n[experiments.welcome]\non = "became_one_timer"\nholdout = 0.2\nwithin = "30d"\n'
    )
    model = directory / "model.json"  # and the model's three plots
    fitted = lifecycle("model", "fit", str(history), "--calibration-end", "2025-07-01", "-o", str(model))
    assert fitted.returncode == 0, fitted.stderr
    result = lifecycle("report", str(history), "-o", str(out), "--config", str(preset), "--model", str(model))
    assert result.returncode == 0, result.stderr
    return out


def test_the_page_references_nothing_outside_itself(page: Path):
    text = page.read_text()
    assert not re.search(r"<script|<link|<img|<iframe|src=|url\(|@import", text, re.IGNORECASE)
    # the only address is the SVG namespace, which nothing fetches
    assert set(re.findall(r"https?://[^\"'\s>]+", text)) == {"http://www.w3.org/2000/svg"}


def test_the_page_draws_every_plot_in_a_real_browser(page: Path, tmp_path: Path):
    dom = chromium_dom(page, tmp_path / "profile")
    sections = re.findall(r"<section>(.*?)</section>", dom, re.DOTALL)
    assert len(sections) == PLOTS
    for section in sections:  # each plot drew marks, not an "empty" notice
        assert "<svg" in section
        assert re.search(r"<(rect|polyline)\b", section), section[:300]
    chromium = shutil.which("chromium")
    assert chromium
    profile = [f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            *profile,
            "--window-size=1000,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
