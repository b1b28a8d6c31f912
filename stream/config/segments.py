"""The `[segments.<name>]` and `[classes]` sections of the configuration, checked into
`SegmentRules` for the core. Every mistake names its key (docs/segments.md lists them)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ..lifecycle import State
from ..lifecycle.money import to_minor_units
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


def check_name(key: str, name: str, what: str) -> None:
    """Names end up in topic names and metric labels: stop on one that cannot."""
    if not SEGMENT_NAME.fullmatch(name):
        raise SegmentConfigError(
            key, f"{what} name is a lower-case letter, then up to 47 lower-case letters, digits or _"
        )


def _segment(name: str, values: object, duration: Callable[[object], int]) -> Segment:
    key = f"segments.{name}"
    check_name(key, name, "a segment")
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
    "overdue",
    "p_alive_below",
    "expected_value_over",
    "signed_up_within",
    "engaged",
    "engaged_within",
)
_ENGAGED_KEY = re.compile(r"[A-Za-z0-9_.-]+(:(sku|category):.+)?")


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
    needs("engaged_within", "engaged")
    spend = _spend(values["spend_over"], f"{prefix}.spend_over") if "spend_over" in values else None
    value = (
        _amount(values["expected_value_over"], f"{prefix}.expected_value_over")
        if "expected_value_over" in values
        else None
    )
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
        overdue=_number(values["overdue"], f"{prefix}.overdue", 0, None) if "overdue" in values else None,
        p_alive_below=_number(values["p_alive_below"], f"{prefix}.p_alive_below", 0, 1)
        if "p_alive_below" in values
        else None,
        expected_value_over=value[0] if value else None,
        expected_value_currency=value[1] if value else None,
        signed_up_within=window("signed_up_within"),
        engaged=_engaged(values["engaged"], f"{prefix}.engaged") if "engaged" in values else frozenset(),
        engaged_within=window("engaged_within"),
    )
    if conditions.is_empty():
        raise SegmentConfigError(prefix, f"a segment needs at least one condition ({', '.join(_KNOWN)})")
    return conditions


def _count(value: object, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SegmentConfigError(key, f"expected a whole number, 0 or more, got `{value!r}`")
    return value


def _number(value: object, key: str, above: float, below: float | None) -> float:
    """A number strictly between `above` and `below` (no upper bound without one)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value > above and (below is None or value < below))
    ):
        bounds = f"between {above} and {below}" if below is not None else f"above {above}"
        raise SegmentConfigError(key, f"expected a number {bounds}, got `{value!r}`")
    return float(value)


def _amount(value: object, key: str) -> tuple[float, str]:
    """An amount in major units and its currency, like "200 EUR"."""
    match = _AMOUNT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise SegmentConfigError(key, f'expected an amount and a currency like "200 EUR", got `{value!r}`')
    return float(match.group(1)), match.group(2).upper()


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


def _engaged(value: object, key: str) -> frozenset[str]:
    example = '["added_to_cart", "product_viewed:category:shoes", "email_clicked"]'
    if not isinstance(value, list) or not value:
        raise SegmentConfigError(key, f"expected a list of engagement kinds like {example}")
    for entry in value:
        if not isinstance(entry, str) or not _ENGAGED_KEY.fullmatch(entry):
            raise SegmentConfigError(
                key,
                'expected entries "<kind>", "<kind>:sku:<sku>" or "<kind>:category:<category>", '
                f"got `{entry!r}`",
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


def check_model_conditions(rules: SegmentRules, model: Any) -> SegmentRules:
    """The rules with the customer-base model attached; conditions on it need one that can
    answer them (`model` is a loaded `stream.model.scores.Model`, or None)."""
    for segment in rules.segments:
        for store, conditions in [(None, segment.conditions), *segment.stores.items()]:
            prefix = f"segments.{segment.name}" + (f".stores.{store}" if store else "")
            if not conditions.uses_model():
                continue
            key = "p_alive_below" if conditions.p_alive_below is not None else "expected_value_over"
            if model is None:
                raise SegmentConfigError(f"{prefix}.{key}", "needs a fitted model: set [model] path")
            if conditions.expected_value_over is not None:
                key = f"{prefix}.expected_value_over"
                if model.gamma_gamma is None or model.gamma_gamma.q <= 1:
                    raise SegmentConfigError(key, "the model has no Gamma-Gamma fit with a finite mean value")
                if conditions.expected_value_currency != model.currency:
                    raise SegmentConfigError(
                        key,
                        f"the model's values are in {model.currency}, "
                        f"not {conditions.expected_value_currency}",
                    )
    return replace(rules, model=model)
