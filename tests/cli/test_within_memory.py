"""The commands that read every customer of a replay (report, model fit and score, what-if)
within a memory budget too small for one process: the partitions replayed in groups, one
process after another, their customers on disk. Every output is the same, byte for byte, as
in one process."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.replay.memory import PROCESS_BASE, input_estimate
from tests.helpers import lifecycle, run_cli

REPO = Path(__file__).resolve().parents[2]
# segments, classes and triggers (the preset), an experiment; the generated engagement gives
# the funnel its sign-ups
SHOP = (
    "[kafka]\npartitions = 5\n"
    + (REPO / "deploy" / "segments.example.toml").read_text()
    + '\n[experiments.welcome]\non = "became_one_timer"\nholdout = 0.5\nwithin = "30d"\n'
)
PROPOSED = SHOP.replace('within = "30d"', 'within = "10d"') + '\n[policy]\none_timer_window = "60d"\n'
TINY = "1M"

# each command's arguments ({dir}: the shop's directory, {0}, {1}: where it writes), and the
# files it writes
COMMANDS = {
    "report": (
        ["report", "{dir}/history.jsonl", "--config", "{dir}/shop.toml", "--model", "{dir}/model.json",
         "--kpis", "{0}", "-o", "{1}"],
        ["kpis.json", "report.html"],
    ),
    "report, until and in arrival order": (
        ["report", "{dir}/history.jsonl", "--config", "{dir}/shop.toml", "--until", "2026-03-01",
         "--arrival-order", "--kpis", "{0}"],
        ["kpis-until.json"],
    ),
    "model fit": (
        ["model", "fit", "{dir}/history.jsonl", "--config", "{dir}/shop.toml", "--calibration-end",
         "2025-07-01", "-o", "{0}"],
        ["model.json"],
    ),
    "model score": (
        ["model", "score", "{dir}/history.jsonl", "--config", "{dir}/shop.toml", "--model",
         "{dir}/model.json", "-o", "{0}"],
        ["scores.jsonl"],
    ),
    "what-if": (
        ["what-if", "{dir}/history.jsonl", "--config", "{dir}/shop.toml", "--config", "{dir}/proposed.toml",
         "--json", "{0}", "-o", "{1}"],
        ["what-if.json", "what-if.html"],
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("within-memory")
    history = directory / "history.jsonl"
    made = lifecycle("generate", "--customers", "400", "--seed", "8", "--engagement", "2", "-o", str(history))
    assert made.returncode == 0, made.stderr
    (directory / "shop.toml").write_text(SHOP)
    (directory / "proposed.toml").write_text(PROPOSED)
    fitted = lifecycle(
        "model", "fit", str(history), "--calibration-end", "2025-07-01", "-o", str(directory / "model.json")
    )
    assert fitted.returncode == 0, fitted.stderr
    return directory


def _run(shop: Path, command: str, budget: str | None) -> tuple[list[bytes], str]:
    """What the command wrote (under names of this budget's), and what it said on stderr."""
    args, files = COMMANDS[command]
    written = [shop / f"{name}.{budget or 'whole'}" for name in files]
    ran = run_cli(
        *(part.format(*written, dir=shop) for part in args), *(["--memory", budget] if budget else [])
    )
    assert ran.returncode == 0, ran.stderr
    return [path.read_bytes() for path in written], ran.stderr.decode()


def _budget_for_two_groups(shop: Path, command: str) -> str:
    """A budget that the history's estimate fits in two groups of partitions, not in one."""
    copies = 2 if command == "what-if" else 1  # what-if replays two configurations side by side
    estimate = copies * input_estimate([str(shop / "history.jsonl")], "jsonl")
    return str(PROCESS_BASE + estimate // 2 + 1)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("groups", [5, 2])  # one partition a group; 3 and 2 partitions
def test_a_budget_too_small_for_one_process_gives_the_same_bytes(shop: Path, command: str, groups: int):
    whole, said = _run(shop, command, None)
    assert "groups of partitions" not in said
    budget = TINY if groups == 5 else _budget_for_two_groups(shop, command)
    grouped, said = _run(shop, command, budget)
    assert f"replaying in {groups} groups of partitions, 1 at a time" in said
    assert f"group {groups} of {groups} replayed" in said
    assert grouped == whole
    assert all(len(output) > 1000 for output in whole)  # something of substance to compare


def test_the_report_compared_measures_what_is_noted_beside_the_customers(shop: Path):
    """Exposures, sign-ups and firings are noted by each group's process and merged: the
    report compared above has each of them to compare."""
    [kpis, _], _ = _run(shop, "report", None)
    figures = orjson.loads(kpis)
    groups = figures["experiments"]["welcome"]["groups"]
    assert groups["treatment"]["exposed"] > 0 and groups["holdout"]["exposed"] > 0
    assert sum(sum(by_source.values()) for by_source in figures["funnel"]["sign_ups_by_month"].values()) > 0
    assert sum(trigger["firings"] for trigger in figures["funnel"]["triggers"].values()) > 0


def test_what_if_of_configurations_with_other_partitions_says_it_keeps_no_budget(shop: Path, tmp_path: Path):
    other = tmp_path / "other.toml"
    other.write_text(SHOP.replace("partitions = 5", "partitions = 3"))
    ran = run_cli(
        "what-if", str(shop / "history.jsonl"), "--config", str(shop / "shop.toml"), "--config", str(other),
        "--json", str(tmp_path / "w.json"), "--memory", TINY,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert b"--memory is not kept to when the configurations differ in kafka.partitions" in ran.stderr


def test_a_group_that_fails_stops_the_command_and_leaves_no_customers_on_disk(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import os
    import tempfile

    import stream.replay.held as held

    def out_of_memory(*args: object) -> None:
        (tmp_path / "customers were written to").write_text(str(args[-1]))
        os.kill(os.getpid(), 9)  # what the kernel's OOM killer does

    monkeypatch.setattr(held, "_group", out_of_memory)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ran = run_cli("report", str(shop / "history.jsonl"), "--kpis", str(tmp_path / "k.json"), "--memory", TINY)
    assert ran.returncode != 0
    assert b"the replay of group 1 of 6 was killed by signal 9" in ran.stderr
    directory = Path((tmp_path / "customers were written to").read_text())
    assert directory.parent == tmp_path and directory.name.startswith("lifecycle-customers-")
    assert not directory.exists()
