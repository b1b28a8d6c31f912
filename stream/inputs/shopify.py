"""Shopify's orders CSV export, read as order events (`--format shopify`).

The export has one row per line item; an order's rows follow each other and only its first
row carries the order-level columns (`Name`, `Email`, `Created at`, `Total` …). Each order
becomes an `order.placed` event (its line items as `items`), an `order.cancelled` event when
`Cancelled at` is set or the payment was voided, and an `order.refunded` event when
`Refunded Amount` is above zero. The export carries no refund time: a refund is dated at the
order's creation, so a fully refunded order never counts, and a partial refund lowers its
spend from the start. Customers are identified by their email address, lower-cased: the
export has no customer id.

Event ids derive from the order's `Name`, so importing the same export twice (or an export
that overlaps an earlier one) counts nothing twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO

import orjson

from ..lifecycle.events import MAX_QUANTITY
from ..lifecycle.instants import format_rfc3339, to_us
from ..lifecycle.money import to_minor_units
from .csv_text import CsvRow, InputFormatError, csv_rows, original_bytes, shown
from .files import InputLine

REQUIRED = ("Name", "Email", "Created at", "Currency", "Total")
OPTIONAL = (
    "Financial Status",
    "Paid at",
    "Discount Code",
    "Payment Method",
    "Cancelled at",
    "Refunded Amount",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem sku",
    "Source",
    "Accepts Marketing",
)


_QUANTITY = re.compile("[0-9]{1,12}")  # ASCII digits only: `int` takes `٣` and refuses `²`


class RowError(ValueError):
    """A value that cannot be read; the message names the column."""


def shopify_lines(stream: BinaryIO, encoding: str = "utf-8") -> Iterator[InputLine]:
    """Order events of a Shopify orders export, each tagged with its order's first line."""
    header, rows = csv_rows(stream, encoding)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputFormatError(
            f"not a Shopify orders export: the header lacks the column(s) {', '.join(missing)}"
        )
    order: list[CsvRow] = []
    name = header.index("Name")
    for row in rows:
        if not row.values and row.error is None:
            continue  # a blank line
        if order and _value(row, name) != _value(order[0], name):
            yield from _order_events(header, order)
            order = []
        order.append(row)
    if order:
        yield from _order_events(header, order)


def _value(row: CsvRow, index: int) -> str | None:
    return row.values[index] if index < len(row.values) else None


def _order_events(header: list[str], rows: list[CsvRow]) -> Iterator[InputLine]:
    """The events of one order's rows, or its first row rejected with the first reason any
    of its rows gives."""
    line, first = rows[0].line, dict(zip(header, rows[0].values, strict=False))
    reason = next((row.error for row in rows if row.error is not None), None)
    if reason is None:
        try:
            events = _events(first, [dict(zip(header, row.values, strict=False)) for row in rows])
        except RowError as error:
            reason = f"line {line}: {error}"
    if reason is not None:
        yield InputLine(line, original_bytes(rows[0].values, ","), reason)
        return
    for event in events:
        yield InputLine(line, orjson.dumps(event))


def _events(first: dict[str, str], rows: list[dict[str, str]]) -> list[dict[str, object]]:
    name = _required(first, "Name")
    email = _required(first, "Email").lower()
    currency = _required(first, "Currency").upper()
    created_at = _instant(first, "Created at")
    base = {"customer_id": email, "order_id": name}
    placed: dict[str, object] = {
        "type": "order.placed",
        "event_id": f"shopify:{name}:placed",
        "occurred_at": created_at,
        **base,
        "total": {"amount_minor": _money(first, "Total", currency), "currency": currency},
    }
    items = [item for row in rows if (item := _item(row, currency)) is not None]
    if items:
        placed["items"] = items
    placed["email"] = email
    consent = (first.get("Accepts Marketing") or "").strip().lower()
    if consent in ("yes", "no"):
        placed["accepts_marketing"] = consent == "yes"
    for column, field in (
        ("Discount Code", "coupon"),
        ("Payment Method", "payment_method"),
        ("Source", "channel"),
    ):
        if (first.get(column) or "").strip():
            placed[field] = first[column].strip()
    events: list[dict[str, object]] = [placed]
    cancelled_at = (first.get("Cancelled at") or "").strip()
    voided = (first.get("Financial Status") or "").strip().lower() == "voided"
    if cancelled_at or voided:
        when = _instant(first, "Cancelled at") if cancelled_at else created_at
        events.append(
            {"type": "order.cancelled", "event_id": f"shopify:{name}:cancelled", "occurred_at": when, **base}
        )
    refunded = (
        _money(first, "Refunded Amount", currency) if (first.get("Refunded Amount") or "").strip() else 0
    )
    if refunded > 0:
        events.append(
            {
                "type": "order.refunded",
                "event_id": f"shopify:{name}:refunded",
                "occurred_at": created_at,
                **base,
                "amount": {"amount_minor": refunded, "currency": currency},
            }
        )
    return events


def _item(row: dict[str, str], currency: str) -> dict[str, object] | None:
    sku = (row.get("Lineitem sku") or "").strip() or (row.get("Lineitem name") or "").strip()
    if not sku:
        return None
    quantity = (row.get("Lineitem quantity") or "1").strip()
    if not _QUANTITY.fullmatch(quantity) or not 1 <= int(quantity) <= MAX_QUANTITY:
        raise RowError(
            f"column `Lineitem quantity`: expected a whole number from 1 to {MAX_QUANTITY}, "
            f"got `{shown(quantity[:40])}`"
        )
    price = _money(row, "Lineitem price", currency) if (row.get("Lineitem price") or "").strip() else 0
    return {"sku": sku, "qty": int(quantity), "unit_minor": price}


def _required(row: dict[str, str], column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise RowError(f"column `{column}` is empty")
    return value


def _money(row: dict[str, str], column: str, currency: str) -> int:
    try:
        return to_minor_units(_required(row, column), currency)
    except ValueError as error:
        raise RowError(f"column `{column}`: {error}") from None


def _instant(row: dict[str, str], column: str) -> str:
    """Shopify writes `2024-03-05 14:22:10 +0100`; RFC 3339 is accepted too."""
    text = _required(row, column)
    for parse in (lambda t: datetime.strptime(t, "%Y-%m-%d %H:%M:%S %z"), datetime.fromisoformat):
        try:
            instant = parse(text)
        except ValueError:
            continue
        if instant.tzinfo is not None:
            return format_rfc3339(to_us(instant))
    raise RowError(
        f"column `{column}`: expected a time like `2024-03-05 14:22:10 +0100`, got `{shown(text[:60])}`"
    )
