"""The memory budget's arithmetic (`stream.replay.memory`): amounts as written, and the
fewest groups of partitions that fit."""

from __future__ import annotations

import pytest

from stream.replay.memory import PROCESS_BASE, parse_memory, passes, plan_note

GIB = 2**30


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("2G", 2 * GIB),
        ("512M", 512 * 2**20),
        ("1.5GiB", int(1.5 * GIB)),
        ("3000000", 3_000_000),
        ("64k", 65536),
    ],
)
def test_amounts_are_read_as_people_write_them(text, amount):
    assert parse_memory(text) == amount


@pytest.mark.parametrize("text", ["", "lots", "2 X", "0", "-1G"])
def test_an_amount_that_is_none_stops_with_what_is_expected(text):
    with pytest.raises(ValueError, match="expected an amount of memory"):
        parse_memory(text)


def test_the_fewest_groups_whose_processes_at_once_fit_the_budget():
    # 10 GiB in one process, 4 GiB for two at once: each may hold 2 GiB less its base
    plan = passes(10 * GIB, 4 * GIB, jobs=2, partitions=12)
    assert plan.groups == 6 and plan.met
    assert plan.per_process * 2 <= 4 * GIB
    assert passes(10 * GIB, 4 * GIB, jobs=2, partitions=5).groups == 5  # no finer than a partition
    assert not passes(10 * GIB, 4 * GIB, jobs=2, partitions=5).met
    # enough memory: the jobs alone, and nothing to tell
    plenty = passes(GIB, 16 * GIB, jobs=2, partitions=6)
    assert plenty.groups == 2 and plan_note(plenty, 16 * GIB, 2, "replaying") is None
    # a budget below the processes' base: one partition a group, said
    tiny = passes(GIB, PROCESS_BASE, jobs=1, partitions=6)
    assert tiny.groups == 6 and not tiny.met
    assert "cannot be met" in (plan_note(tiny, PROCESS_BASE, 1, "replaying") or "")
