"""The `[experiments.<name>]` sections of the configuration, checked into `Experiments` for
the core. Every mistake names its key (docs/experiments.md lists them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from ..lifecycle.experiments import Experiment, Experiments
from ..lifecycle.instants import parse_rfc3339, to_us
from ..lifecycle.segments import SegmentRules
from ..lifecycle.transitions import all_transition_names
from ..lifecycle.triggers import TriggerRules
from .segments import SegmentConfigError, check_name

_KNOWN = ("on", "holdout", "goal", "within", "starts", "ends")


def experiments_of(
    tables: object,
    segments: SegmentRules,
    duration: Callable[[object], int],
    triggers: TriggerRules | None = None,
) -> Experiments:
    """Experiments from the parsed `experiments` table (None: none), whose `on` and `goal`
    may name the configured segments, classes and triggers."""
    if tables is None:
        return Experiments()
    if not isinstance(tables, Mapping):
        raise SegmentConfigError("experiments", "expected tables of experiments, e.g. [experiments.win_back]")
    trigger_names = frozenset(t.name for t in triggers.triggers) if triggers is not None else frozenset()
    return Experiments(
        tuple(_experiment(name, table, segments, trigger_names, duration) for name, table in tables.items())
    )


def _experiment(
    name: str,
    values: object,
    segments: SegmentRules,
    trigger_names: frozenset[str],
    duration: Callable[[object], int],
) -> Experiment:
    key = f"experiments.{name}"
    check_name(key, name, "an experiment")
    if not isinstance(values, Mapping):
        raise SegmentConfigError(key, "expected a table with on, holdout, goal and within")
    for unknown in set(values).difference(_KNOWN):
        raise SegmentConfigError(f"{key}.{unknown}", f"unknown key; known keys: {', '.join(_KNOWN)}")
    for required in ("on", "holdout", "within"):
        if required not in values:
            raise SegmentConfigError(f"{key}.{required}", "required")
    on = _on(values["on"], segments, trigger_names, f"{key}.on")
    holdout = values["holdout"]
    if isinstance(holdout, bool) or not isinstance(holdout, int | float) or not 0 < holdout < 1:
        raise SegmentConfigError(f"{key}.holdout", f"expected a share above 0 and below 1, got `{holdout!r}`")
    goal = _goal(values.get("goal", "order"), segments, f"{key}.goal")
    try:
        within = duration(values["within"])
    except ValueError as error:
        raise SegmentConfigError(f"{key}.within", str(error)) from None
    if within <= 0:
        raise SegmentConfigError(f"{key}.within", "expected a duration above zero")
    starts = _instant(values.get("starts"), f"{key}.starts")
    ends = _instant(values.get("ends"), f"{key}.ends")
    if starts is not None and ends is not None and ends <= starts:
        raise SegmentConfigError(f"{key}.ends", "expected an instant after `starts`")
    return Experiment(name, on, float(holdout), goal, within, starts, ends)


def _on(value: object, segments: SegmentRules, trigger_names: frozenset[str], key: str) -> str:
    if not isinstance(value, str):
        raise SegmentConfigError(key, f"expected a string, got `{value!r}`")
    if value in trigger_names:
        return value
    kind, _, name = value.partition(":")
    if kind == "entered_segment" and name in {s.name for s in segments.segments}:
        return value
    if kind == "class_changed" and name in segments.classes:
        return value
    if not name and value in all_transition_names():
        return value
    raise SegmentConfigError(
        key,
        f"`{value}` names no change: expected a transition name (e.g. went_inactive), "
        "entered_segment:<a configured segment>, class_changed:<a configured class> or a "
        "configured trigger",
    )


def _goal(value: object, segments: SegmentRules, key: str) -> str:
    if value == "order":
        return value
    kind, _, name = value.partition(":") if isinstance(value, str) else ("", "", "")
    if kind == "class" and name in segments.classes:
        return f"class:{name}"
    raise SegmentConfigError(key, f"expected `order` or `class:<a configured class>`, got `{value!r}`")


def _instant(value: object, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # TOML's own date-time, unquoted
        if value.tzinfo is None:
            raise SegmentConfigError(key, "expected an instant with a zone, e.g. 2026-01-01T00:00:00Z")
        return to_us(value)
    if not isinstance(value, str):
        raise SegmentConfigError(key, f"expected an RFC 3339 instant, got `{value!r}`")
    try:
        return parse_rfc3339(value)
    except ValueError as error:
        raise SegmentConfigError(key, str(error)) from None
