"""`lifecycle replay`'s progress: bytes of input read, then, in time order, lines replayed."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.cli import build_parser
from stream.cli.common import replay_options
from stream.cli.replay_command import ReplayProgress
from stream.config import load_config
from stream.replay import jobs as replay_jobs
from stream.replay.run import ReplayOptions, ReplayOutputs, replay_here
from tests.helpers import at, placed

NO_OUTPUTS = ReplayOutputs(None, None, None, None)


class FakeBar:
    """A tqdm bar that records what it was made with and asked to do."""

    def __init__(self, made: list[FakeBar], **options: Any) -> None:
        self.options = options
        self.total = options["total"]
        self.n = 0
        self.updates: list[int] = []
        self.closed = False
        self.made_after_closing = [bar for bar in made if bar.closed]
        made.append(self)

    def update(self, count: int) -> None:
        assert not self.closed
        self.n += count
        self.updates.append(count)

    def close(self) -> None:
        self.closed = True


def fake_progress(total_bytes: int | None, in_time_order: bool) -> tuple[ReplayProgress, list[FakeBar]]:
    made: list[FakeBar] = []
    return ReplayProgress(total_bytes, in_time_order, lambda **options: FakeBar(made, **options)), made


def history(path: Path, customers: int, orders_each: int = 2) -> Path:
    """Orders of `customers` customers, newest first: time order differs from the files'."""
    events = [
        placed(f"c{customer}", f"o{customer}-{order}", at(order, us=customer))
        for customer in range(customers)
        for order in range(orders_each)
    ]
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in reversed(events)))
    return path


def replay_args(*arguments: str) -> ReplayOptions:
    return replay_options(build_parser().parse_args(["replay", *arguments]), None)


def test_in_time_order_the_bytes_read_then_every_line_replayed_are_shown(tmp_path):
    source = history(tmp_path / "orders.jsonl", customers=5000)  # more lines than one chunk counted
    lines = 10_000
    progress, bars = fake_progress(source.stat().st_size, in_time_order=True)
    result = replay_here(replay_args(str(source)), load_config(None), NO_OUTPUTS, progress=progress)
    assert result.stats.read == result.lines == lines
    read, replay = bars
    assert read.options["desc"] == "read" and read.options["unit"] == "B"
    assert read.n == read.total == source.stat().st_size and read.closed
    assert replay.made_after_closing == [read]  # the replay's bar once reading is done
    assert replay.options["desc"] == "replay"
    assert replay.n == replay.total == lines and replay.closed
    assert len(replay.updates) == 3  # in chunks of 4096 lines, not a bar update a line


def test_in_arrival_order_one_bar_of_bytes_shows_the_replay(tmp_path):
    source = history(tmp_path / "orders.jsonl", customers=20)
    progress, bars = fake_progress(source.stat().st_size, in_time_order=False)
    args = replay_args(str(source), "--arrival-order")
    replay_here(args, load_config(None), NO_OUTPUTS, progress=progress)
    [replay] = bars
    assert replay.options["desc"] == "replay" and replay.options["unit"] == "B"
    assert replay.n == replay.total == source.stat().st_size and replay.closed


@pytest.mark.parametrize("packed", [False, True], ids=["shares of the input", "gzip: every job reads all"])
def test_with_jobs_the_parent_shows_every_job_s_lines_replayed_out_of_all_lines(tmp_path, packed):
    source = history(tmp_path / "orders.jsonl", customers=3000)
    lines, size = 6000, source.stat().st_size
    if packed:
        source = tmp_path / "orders.jsonl.gz"
        source.write_bytes(gzip.compress((tmp_path / "orders.jsonl").read_bytes()))
    made: list[ReplayProgress] = []

    def progress_bar() -> ReplayProgress:
        progress, _ = fake_progress(None if packed else size, in_time_order=True)
        made.append(progress)
        return progress

    config = load_config(None)
    options = replay_args(str(source), "--jobs", "2")
    result = replay_jobs.replay_in_jobs(options, config, NO_OUTPUTS, jobs=2, new_progress=progress_bar)
    assert result.stats.read == result.lines == lines
    [progress] = made
    read, replay = progress.read, progress.replay
    assert read.n == size and read.closed  # every byte once, whichever jobs read it
    assert replay.made_after_closing == [read]
    assert replay.n == replay.total == lines and replay.closed
