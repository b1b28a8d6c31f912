"""Two configurations over the same history, read once: what each would have emitted
(`held.Emitted`), and their customers for the KPIs each gives.

Every input line is fed to one replay per configuration, in the same order; beyond a memory
budget, the partitions in groups (`stream.replay.held`), both configurations in each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import Config
from .held import Side, replay_sides, replay_sides_in_groups
from .run import ReplayOptions


def what_if(
    options: ReplayOptions,
    configs: tuple[Config, Config],
    groups: int = 1,
    directory: Path | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> tuple[tuple[Side, Side], int]:
    """Both configurations over the inputs; the two sides, and the instant both were brought
    to (`until`, or the last event's). With `groups` above 1, the partitions in that many
    processes one after another, the customers written under `directory`."""
    if groups > 1:
        assert directory is not None
        sides, until = replay_sides_in_groups(options, list(configs), True, groups, directory, say)
    else:
        sides, until = replay_sides(options, list(configs), True)
    first, second = sides
    return (first, second), until
