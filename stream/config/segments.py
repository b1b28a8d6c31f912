"""The `[segments.<name>]` and `[classes]` sections of the configuration, checked into
`SegmentRules` for the core. Every mistake names its key (docs/segments.md lists them)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..inputs.files import to_minor_units
from ..lifecycle import State
from ..lifecycle.segments import Conditions, Segment, SegmentRules

# Segment names end up in topic names and metric labels: lower case, digits, underscores.
SEGMENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")
_ITEM_KEY = re.compile(r"(sku|category):.+")
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s+([A-Za-z]{3})")


class SegmentConfigError(ValueError):
    """Raised with (key, message); config.py turns it into a ConfigError."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config key `{key}`: {message}")


def segment_rules(tables: object, classes: object, duration: Callable[[object], int]) -> SegmentRules:
    """Rules from the parsed `segments` and `classes` tables (either may be None)."""
    segments: list[Segment] = []
    if tables is not None:
        if not isinstance(tables, Mapping):
            raise SegmentConfigError("segments", "expected a table of segments, e.g. [segments.big_spenders]")
        for name, values in tables.items():
            segments.append(_segment(name, values, duration))
    order = _classes(classes, [s.name for s in segments])
    return SegmentRules(tuple(segments), order)


def _segment(name: str, values: object, duration: Callable[[object], int]) -> Segment:
    key = f"segments.{name}"
    if not SEGMENT_NAME.fullmatch(name):
        raise SegmentConfigError(
            key, "a segment name is a lower-case letter, then up to 47 lower-case letters, digits or _"
        )
    if not isinstance(values, Mapping):
        raise SegmentConfigError(key, "expected a table of conditions")
    values = dict(values)
    store_tables = values.pop("stores", {})
    conditions = _conditions(values, key, duration)
    if not isinstance(store_tables, Mapping):
        raise SegmentConfigError(f"{key}.stores", "expected a table of stores")
    stores = {}
    for store, overrides in store_tables.items():
        if not isinstance(overrides, Mapping):
            raise SegmentConfigError(f"{key}.stores.{store}", "expected a table of conditions")
        # a store's conditions replace the segment's, key by key, as a store's policy does
        stores[store] = _conditions({**values, **overrides}, f"{key}.stores.{store}", duration)
    return Segment(name, conditions, stores)


_KNOWN = (
    "orders_over",
    "orders_within",
    "spend_over",
    "spend_within",
    "first_order_within",
    "last_order_within",
    "no_order_within",
    "bought",
    "bought_within",
    "state",
)


def _conditions(values: Mapping[str, Any], prefix: str, duration: Callable[[object], int]) -> Conditions:
    for key in values:
        if key not in _KNOWN:
            raise SegmentConfigError(f"{prefix}.{key}", f"unknown condition; known: {', '.join(_KNOWN)}")

    def window(key: str) -> int | None:
        if key not in values:
            return None
        try:
            micros = duration(values[key])
        except ValueError as error:
            raise SegmentConfigError(f"{prefix}.{key}", str(error)) from None
        if micros <= 0:
            raise SegmentConfigError(f"{prefix}.{key}", "must be longer than zero")
        return micros

    def needs(key: str, base: str) -> None:
        if key in values and base not in values:
            raise SegmentConfigError(f"{prefix}.{key}", f"only applies together with {base}")

    needs("orders_within", "orders_over")
    needs("spend_within", "spend_over")
    needs("bought_within", "bought")
    spend = _spend(values["spend_over"], f"{prefix}.spend_over") if "spend_over" in values else None
    conditions = Conditions(
        orders_over=_count(values["orders_over"], f"{prefix}.orders_over")
        if "orders_over" in values
        else None,
        orders_within=window("orders_within"),
        spend_over=spend[0] if spend else None,
        spend_currency=spend[1] if spend else None,
        spend_within=window("spend_within"),
        first_order_within=window("first_order_within"),
        last_order_within=window("last_order_within"),
        no_order_within=window("no_order_within"),
        bought=_bought(values["bought"], f"{prefix}.bought") if "bought" in values else frozenset(),
        bought_within=window("bought_within"),
        state=_states(values["state"], f"{prefix}.state") if "state" in values else frozenset(),
    )
    if conditions.is_empty():
        raise SegmentConfigError(prefix, f"a segment needs at least one condition ({', '.join(_KNOWN)})")
    return conditions


def _count(value: object, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SegmentConfigError(key, f"expected a whole number, 0 or more, got `{value!r}`")
    return value


def _spend(value: object, key: str) -> tuple[int, str]:
    match = _AMOUNT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise SegmentConfigError(key, f'expected an amount and a currency like "500 EUR", got `{value!r}`')
    currency = match.group(2).upper()
    try:
        return to_minor_units(match.group(1), currency), currency
    except ValueError as error:
        raise SegmentConfigError(key, str(error)) from None


def _bought(value: object, key: str) -> frozenset[str]:
    if not isinstance(value, list) or not value:
        raise SegmentConfigError(key, 'expected a list like ["sku:A-100", "category:shoes"]')
    for entry in value:
        if not isinstance(entry, str) or not _ITEM_KEY.fullmatch(entry):
            raise SegmentConfigError(
                key, f'expected entries "sku:<sku>" or "category:<category>", got `{entry!r}`'
            )
    return frozenset(value)


def _states(value: object, key: str) -> frozenset[State]:
    known = [s.value for s in State]
    if not isinstance(value, list) or not value:
        raise SegmentConfigError(key, f"expected a list of lifecycle states ({', '.join(known)})")
    for entry in value:
        if entry not in known:
            raise SegmentConfigError(key, f"unknown state `{entry!r}`; states: {', '.join(known)}")
    return frozenset(State(entry) for entry in value)


def _classes(table: object, segment_names: list[str]) -> tuple[str, ...]:
    if table is None:
        return ()
    if not isinstance(table, Mapping) or set(table) - {"order"}:
        raise SegmentConfigError("classes", 'expected one key, order = ["a", "b", "c"]')
    order = table.get("order", [])
    if not isinstance(order, list):
        raise SegmentConfigError("classes.order", 'expected a list of segment names, e.g. ["a", "b", "c"]')
    for name in order:
        if name not in segment_names:
            raise SegmentConfigError("classes.order", f"`{name}` is not a configured segment")
    if len(set(order)) != len(order):
        raise SegmentConfigError("classes.order", "a segment is listed twice")
    return tuple(order)
