"""What second purchasers buy: the categories and SKUs of second orders, and which second-order
categories follow which first-order category, with each cell's lift over the overall share.

A customer's first and second orders are their first two counted orders at `T`. Customers
whose oldest orders are folded (docs/lifecycle.md, "Heavy customers") are left out: their
first orders' contents are gone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from ..lifecycle import CustomerState
from ..lifecycle.customer import OrderRecord
from .second_purchase import FEW_CUSTOMERS, NOT_GIVEN, main_category

TOP = 15  # categories and SKUs listed
CROSS_ROWS = 8  # first-order categories in the table, largest first
CROSS_COLUMNS = 8  # second-order categories in the table, most common first


def second_order_contents(customers: Iterable[CustomerState], until_us: int) -> dict[str, Any]:
    second_orders = 0
    categories: Counter[str] = Counter()
    skus: Counter[str] = Counter()
    by_first: dict[str, Counter[str]] = defaultdict(Counter)  # first category -> second categories
    firsts: Counter[str] = Counter()
    for customer in customers:
        if customer.folded is not None:
            continue
        pair = _first_two(customer, until_us)
        if pair is None:
            continue
        first, second = pair
        second_orders += 1
        in_second = {item.category or NOT_GIVEN for item in second.items or ()} or {NOT_GIVEN}
        categories.update(in_second)
        skus.update({item.sku for item in second.items or ()})
        row = main_category(first)
        firsts[row] += 1
        by_first[row].update(in_second)
    overall = {c: n / second_orders for c, n in categories.items()} if second_orders else {}
    columns = [c for c, _ in _ranked(categories)[:CROSS_COLUMNS]]
    return {
        "second_orders": second_orders,
        "categories": [_listed("category", c, n, second_orders) for c, n in _ranked(categories)[:TOP]],
        "skus": [_listed("sku", s, n, second_orders) for s, n in _ranked(skus)[:TOP]],
        "from_first_category": {
            "columns": columns,
            "rows": [
                {
                    "first_category": row,
                    "second_orders": count,
                    "few": count < FEW_CUSTOMERS,
                    "cells": [_cell(by_first[row][c], count, overall[c]) for c in columns],
                }
                for row, count in _ranked(firsts)[:CROSS_ROWS]
            ],
        },
    }


def _first_two(customer: CustomerState, until_us: int) -> tuple[OrderRecord, OrderRecord] | None:
    counted = sorted(
        (
            (at, order)
            for order in customer.orders.values()
            if (at := order.counted_at()) is not None and at <= until_us
        ),
        key=lambda placed: (placed[0], placed[1].placed_event_id or ""),
    )
    if len(counted) < 2:
        return None
    return counted[0][1], counted[1][1]


def _ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    """Most first; ties by name, so the order is the same on every run."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _listed(key: str, value: str, orders: int, total: int) -> dict[str, Any]:
    return {key: value, "second_orders": orders, "share": orders / total}


def _cell(orders: int, row_total: int, overall_share: float) -> dict[str, Any]:
    share = orders / row_total
    return {"second_orders": orders, "share": share, "lift": share / overall_share}
