"""The `[triggers.<name>]` sections of the configuration, checked into `TriggerRules` for the
core. Every mistake names its key (docs/triggers.md lists them)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from ..lifecycle import State
from ..lifecycle.segments import SegmentRules
from ..lifecycle.transitions import all_transition_names
from ..lifecycle.triggers import Trigger, TriggerRules
from .segments import SegmentConfigError, check_name

_KNOWN = ("on", "after", "unless", "only_state", "once")
_KIND = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def triggers_of(tables: object, segments: SegmentRules, duration: Callable[[object], int]) -> TriggerRules:
    """Triggers from the parsed `triggers` table (None: none), whose `on` may name the
    configured segments."""
    if tables is None:
        return TriggerRules()
    if not isinstance(tables, Mapping):
        raise SegmentConfigError("triggers", "expected tables of triggers, e.g. [triggers.welcome]")
    return TriggerRules(tuple(_trigger(name, table, segments, duration) for name, table in tables.items()))


def _trigger(name: str, values: object, segments: SegmentRules, duration: Callable[[object], int]) -> Trigger:
    key = f"triggers.{name}"
    check_name(key, name, "a trigger")
    if name in all_transition_names():
        # an experiment's `on` names a trigger or a transition by the same word
        raise SegmentConfigError(key, f"`{name}` is a transition's name; give the trigger another")
    if not isinstance(values, Mapping):
        raise SegmentConfigError(key, 'expected a table with at least on, e.g. on = "signed_up"')
    for unknown in set(values).difference(_KNOWN):
        raise SegmentConfigError(f"{key}.{unknown}", f"unknown key; known keys: {', '.join(_KNOWN)}")
    if "on" not in values:
        raise SegmentConfigError(f"{key}.on", "required")
    on = _on(values["on"], segments, f"{key}.on")
    after = 0
    if "after" in values:
        try:
            after = duration(values["after"])
        except ValueError as error:
            raise SegmentConfigError(f"{key}.after", str(error)) from None
        if after < 0:
            raise SegmentConfigError(f"{key}.after", "expected a duration of zero or more")
    unless = _unless(values.get("unless", []), f"{key}.unless")
    only_state = _states(values.get("only_state", []), f"{key}.only_state")
    once = values.get("once", False)
    if not isinstance(once, bool):
        raise SegmentConfigError(f"{key}.once", f"expected true or false, got `{once!r}`")
    return Trigger(name, on, after, unless, only_state, once)


def _event_name(value: str) -> bool:
    kind, _, rest = value.partition(":")
    return value in ("order", "signed_up") or (kind == "engaged" and bool(_KIND.fullmatch(rest)))


def _on(value: object, segments: SegmentRules, key: str) -> str:
    if isinstance(value, str):
        kind, _, name = value.partition(":")
        if _event_name(value) or value in all_transition_names():
            return value
        if kind == "entered_segment" and name in {s.name for s in segments.segments}:
            return value
    raise SegmentConfigError(
        key,
        f"`{value}` names nothing that happens: expected signed_up, engaged:<kind>, order, "
        "a transition name (e.g. became_one_timer) or entered_segment:<a configured segment>",
    )


def _unless(value: object, key: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and _event_name(v) for v in value):
        raise SegmentConfigError(
            key, f'expected a list of "order", "signed_up" or "engaged:<kind>", got `{value!r}`'
        )
    return frozenset(value)


def _states(value: object, key: str) -> frozenset[State]:
    known = [s.value for s in State]
    if not isinstance(value, list) or any(v not in known for v in value):
        raise SegmentConfigError(
            key, f"expected a list of lifecycle states ({', '.join(known)}), got `{value!r}`"
        )
    return frozenset(State(v) for v in value)
