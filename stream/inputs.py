"""Reading order events from files: JSONL (plain, gzip, stdin) and flat CSV order exports.

Each reader yields (line number, raw event bytes or None when the line is over the size
limit, reason when a CSV row cannot become an event). Bytes then go through the one
validation path, `stream.messages.decode_event`.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import BinaryIO, NamedTuple

import orjson

from .messages import MAX_EVENT_BYTES

CSV_REQUIRED = ("customer_id", "order_id", "occurred_at", "amount", "currency")
CSV_OPTIONAL = ("type", "event_id", "store_id", "channel", "payment_method", "coupon")

# ISO 4217 currencies whose minor unit is not a hundredth.
_MINOR_DIGITS = {
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "HUF": 2,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
}


class InputFormatError(ValueError):
    """An input that is not of its format at all (e.g. a CSV header without a required
    column): the command stops with this one line, naming the column."""


class InputLine(NamedTuple):
    line: int
    raw: bytes
    error: str | None = None


def open_input(path: str) -> BinaryIO:
    """A binary stream of the input: `-` is stdin, `.gz` is decompressed on the fly."""
    if path == "-":
        return sys.stdin.buffer
    handle: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by the caller
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def jsonl_lines(stream: BinaryIO) -> Iterator[InputLine]:
    """Lines of a JSONL stream; a line over the size limit is skipped unread."""
    number = 0
    readline = stream.readline
    while True:
        raw = readline(MAX_EVENT_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_EVENT_BYTES and not raw.endswith(b"\n"):
            size = len(raw) + _skip_rest_of_line(stream)
            yield InputLine(
                number,
                raw[:64],
                f"line of over {size - 1} bytes is over the {MAX_EVENT_BYTES}-byte limit; not read",
            )
            continue
        line = raw.rstrip(b"\r\n")
        if line and not line.isspace():
            yield InputLine(number, line)


def _skip_rest_of_line(stream: BinaryIO) -> int:
    skipped = 0
    while True:
        chunk = stream.readline(MAX_EVENT_BYTES)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def csv_lines(stream: BinaryIO) -> Iterator[InputLine]:
    """Rows of a flat order export, turned into order-event JSON (see README for columns)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text)
    missing = [c for c in CSV_REQUIRED if c not in (reader.fieldnames or ())]
    if missing:
        found = ", ".join(reader.fieldnames or ()) or "none"
        raise InputFormatError(
            f"the CSV header lacks the column(s) {', '.join(missing)} (found: {found}; "
            "a `;`-separated file is read as one column)"
        )
    for row in reader:
        line = reader.line_num
        try:
            yield InputLine(line, orjson.dumps(csv_row_event(row)))
        except ValueError as error:
            yield InputLine(line, ",".join(v or "" for v in row.values()).encode(), str(error))


def to_minor_units(amount: str, currency: str) -> int:
    digits = _MINOR_DIGITS.get(currency.upper(), 2)
    try:
        value = Decimal(amount.strip()) * (10**digits)
    except InvalidOperation:
        raise ValueError(f"amount `{amount}` is not a decimal number") from None
    if value != value.to_integral_value():
        raise ValueError(f"amount `{amount}` has more decimals than {currency} allows")
    return int(value)


def to_major_units(minor: int, currency: str) -> str:
    """`1250` EUR is `12.50`; `1000` JPY is `1000`."""
    digits = _MINOR_DIGITS.get(currency.upper(), 2)
    return str(Decimal(minor).scaleb(-digits))


def csv_row_event(row: dict[str, str]) -> dict[str, object]:
    """One CSV row as an order event. Rows without event_id get one derived from the order,
    so sending the same export twice counts nothing twice."""
    kind = (row.get("type") or "order.placed").strip()
    order_id = row["order_id"]
    event: dict[str, object] = {
        "type": kind,
        "event_id": row.get("event_id") or f"csv:{kind}:{order_id}:{row['occurred_at']}",
        "customer_id": row["customer_id"],
        "occurred_at": row["occurred_at"],
        "order_id": order_id,
    }
    if kind in ("order.placed", "order.refunded"):
        money = {"amount_minor": to_minor_units(row["amount"], row["currency"]), "currency": row["currency"]}
        event["total" if kind == "order.placed" else "amount"] = money
    if kind == "order.placed":
        for column in ("store_id", "channel", "payment_method", "coupon"):
            if row.get(column):
                event[column] = row[column]
    return event


FORMATS = ("jsonl", "csv", "shopify")


def format_lines(stream: BinaryIO, input_format: str) -> Iterator[InputLine]:
    """The lines of an input in one of FORMATS."""
    if input_format == "csv":
        return csv_lines(stream)
    if input_format == "shopify":
        from .shopify_export import shopify_lines

        return shopify_lines(stream)
    return jsonl_lines(stream)
