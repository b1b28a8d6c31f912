"""`lifecycle what-if`: two configurations over one history, every figure worked out by hand,
and the page in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from stream.lifecycle.instants import format_rfc3339
from tests.helpers import at, chromium_dom, placed, run_cli, write_events

WINDOW_30 = '[policy]\none_timer_window = "30d"\n'
WINDOW_60 = '[policy]\none_timer_window = "60d"\n'


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    directory = tmp_path_factory.mktemp("what-if")
    # a buys again on day 40: past a 30-day window (inactive, then reactivated), within a
    # 60-day one (repeat); b never buys again
    history = write_events(
        directory / "history.jsonl",
        [placed("a", "a1", at(0)), placed("b", "b1", at(1)), placed("a", "a2", at(40))],
    )
    current, proposed = directory / "current.toml", directory / "proposed.toml"
    current.write_text(WINDOW_30)
    proposed.write_text(WINDOW_60)
    out, page = directory / "diff.json", directory / "diff.html"
    ran = run_cli(
        "what-if", str(history), "--config", str(current), "--config", str(proposed),
        "--until", format_rfc3339(at(100)), "--json", str(out), "-o", str(page),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return orjson.loads(out.read_bytes()), page


def test_each_kind_of_change_counted_under_both_with_who_gets_it_under_one_only(compared):
    document, _ = compared
    changes = document["changes"]
    assert changes["became_one_timer"]["total"] == [2, 2]
    assert changes["became_one_timer"]["only_first"]["customers"] == 0
    # under 30 days a goes inactive on day 30 and is reactivated on day 40; under 60 days a
    # becomes a repeat buyer on day 40
    assert changes["reactivated"]["total"] == [1, 0]
    assert changes["reactivated"]["only_first"] == {"customers": 1, "examples": ["a"]}
    assert changes["became_repeat"]["total"] == [0, 1]
    assert changes["became_repeat"]["only_second"] == {"customers": 1, "examples": ["a"]}
    # under 30 days a and b go inactive on days 30 and 31 (2025-03-31 and 04-01, week 14);
    # under 60 days only b, on day 61 (2025-05-01, week 18)
    inactive = changes["went_inactive"]
    assert inactive["customers"] == [2, 1]
    assert inactive["per_week"] == {"2025-W14": [2, 0], "2025-W18": [0, 1]}


def test_the_kpis_the_configuration_moves_side_by_side(compared):
    document, _ = compared
    current, proposed = document["kpis"]
    assert (current["one_timer_window_days"], proposed["one_timer_window_days"]) == (30, 60)
    # both first orders are a window old by day 100; a's second order came on day 40
    assert current["second_purchase_within_window"] == {"eligible": 2, "converted": 0, "rate": 0.0}
    assert proposed["second_purchase_within_window"] == {"eligible": 2, "converted": 1, "rate": 0.5}


def test_the_page_draws_every_kind_in_a_real_browser(compared, tmp_path: Path):
    document, page = compared
    sections = re.findall(r"<section>(.*?)</section>", chromium_dom(page, tmp_path / "profile"), re.DOTALL)
    assert len(sections) == len(document["changes"])
    assert all("<svg" in section and "<rect" in section for section in sections)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "a.toml"], "--config: give exactly two"),
        (["-", "--config", "a.toml", "--config", "b.toml", "--json", "-"], "give files, not stdin"),
    ],
)
def test_usage_mistakes_exit_2_with_one_line(tmp_path: Path, args, message):
    history = write_events(tmp_path / "h.jsonl", [placed("a", "a1", at(0))])
    ran = run_cli("what-if", str(history), *args)
    assert ran.returncode == 2 and message in ran.stderr.decode()
