"""Reading order events from files: JSONL (plain, gzip, stdin) and flat CSV order exports.

Each reader yields (line number, raw event bytes or None when the line is over the size
limit, reason when a CSV row cannot become an event). Bytes then go through the one
validation path, `stream.inputs.messages.decode_event`.
"""

from __future__ import annotations

import gzip
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import BinaryIO, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from ..lifecycle.money import to_minor_units
from .csv_text import InputFormatError as InputFormatError  # the readers' error, for their callers
from .csv_text import csv_rows, original_bytes, shown
from .messages import MAX_EVENT_BYTES

CSV_REQUIRED = ("customer_id", "order_id", "occurred_at", "amount", "currency")
CSV_OPTIONAL = ("type", "event_id", "store_id", "channel", "payment_method", "coupon")
# a CSV of sign-ups (a newsletter tool's or an account export): `--format signups`
SIGNUP_REQUIRED = ("customer_id", "occurred_at")
SIGNUP_OPTIONAL = ("event_id", "email", "accepts_marketing", "source")
_YES, _NO = ("true", "yes", "y", "1"), ("false", "no", "n", "0")


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
    return (line for _, line in _jsonl_lines_at(stream))


def _jsonl_lines_at(
    stream: BinaryIO, offset: int = 0, end: int = sys.maxsize, number: int = 0
) -> Iterator[tuple[int, InputLine]]:
    """(byte offset, line) of the lines that start before `end`, the stream being at `offset`
    after `number` lines."""
    readline = stream.readline
    while offset < end:
        raw = readline(MAX_EVENT_BYTES + 1)
        if not raw:
            return
        number += 1
        start = offset
        offset += len(raw)
        if len(raw) > MAX_EVENT_BYTES and not raw.endswith(b"\n"):
            size = len(raw) + _skip_rest_of_line(stream)
            offset = start + size
            reason = f"line of over {size - 1} bytes is over the {MAX_EVENT_BYTES}-byte limit; not read"
            yield start, InputLine(number, raw[:64], reason)
            continue
        line = raw.rstrip(b"\r\n")
        if line and not line.isspace():
            yield start, InputLine(number, line)


class Piece(NamedTuple):
    """The lines of a JSONL file that start at byte offsets in [start, end); `base` is the
    file's offset in all the inputs laid end to end."""

    path: str
    start: int
    end: int
    base: int


def split_inputs(paths: list[str], parts: int) -> list[list[Piece]]:
    """The JSONL files laid end to end and cut into `parts` shares of about equal bytes,
    each as the pieces of files it covers; every line is in exactly one share."""
    sizes = [os.path.getsize(path) for path in paths]
    total = sum(sizes)
    cuts = [total * part // parts for part in range(parts + 1)]
    shares = []
    for low, high in itertools.pairwise(cuts):
        pieces, base = [], 0
        for path, size in zip(paths, sizes, strict=True):
            start, end = max(low - base, 0), min(high - base, size)
            if start < end:
                pieces.append(Piece(path, start, end, base))
            base += size
        shares.append(pieces)
    return shares


def piece_lines(piece: Piece) -> Iterator[tuple[int, InputLine]]:
    """(position, line) of the lines of a piece, numbered as in the whole file; a line's
    position is its offset in all the inputs laid end to end."""
    with open(piece.path, "rb") as handle:
        start = piece.start
        if start > 0:  # the piece's first line starts after the first newline at or after start - 1
            handle.seek(start - 1)
            start += _skip_rest_of_line(handle) - 1
        if start >= piece.end:
            return
        number = _newlines_before(handle, start)
        handle.seek(start)
        for offset, line in _jsonl_lines_at(handle, start, piece.end, number):
            yield piece.base + offset, line


def _newlines_before(handle: BinaryIO, end: int) -> int:
    handle.seek(0)
    count = 0
    while end > 0:
        chunk = handle.read(min(end, 1 << 20))
        if not chunk:
            break
        count += chunk.count(b"\n")
        end -= len(chunk)
    return count


def _skip_rest_of_line(stream: BinaryIO) -> int:
    skipped = 0
    while True:
        chunk = stream.readline(MAX_EVENT_BYTES)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


@dataclass(frozen=True)
class CsvLayout:
    """How a shop's CSV export is laid out: which of its columns hold ours (`columns`: our
    name -> theirs), the delimiter, a decimal comma, and the zone of timestamps without one."""

    columns: dict[str, str] = field(default_factory=dict)
    delimiter: str = ","
    decimal_comma: bool = False
    timezone: str | None = None
    encoding: str = "utf-8"

    def column(self, ours: str) -> str:
        return self.columns.get(ours, ours)


def csv_lines(stream: BinaryIO, layout: CsvLayout | None = None) -> Iterator[InputLine]:
    """Rows of a flat order export, turned into order-event JSON (see README for columns)."""
    return _csv_event_lines(stream, layout or CsvLayout(), CSV_REQUIRED, CSV_OPTIONAL, csv_row_event)


def signup_lines(stream: BinaryIO, layout: CsvLayout | None = None) -> Iterator[InputLine]:
    """Rows of a CSV of sign-ups, turned into customer.signed_up events (docs/triggers.md)."""
    return _csv_event_lines(stream, layout or CsvLayout(), SIGNUP_REQUIRED, SIGNUP_OPTIONAL, signup_row_event)


def _csv_event_lines(
    stream: BinaryIO,
    layout: CsvLayout,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    to_event: Callable[[dict[str, str], CsvLayout, tzinfo | None], dict[str, object]],
) -> Iterator[InputLine]:
    zone = _zone(layout.timezone)
    header, rows = csv_rows(stream, layout.encoding, layout.delimiter)
    missing = [layout.column(c) for c in required if layout.column(c) not in header]
    if missing:
        found = shown(", ".join(header)) or "none"
        hint = "" if layout.delimiter != "," else "; a `;`-separated file is read as one column (--delimiter)"
        raise InputFormatError(
            f"the CSV header lacks the column(s) {', '.join(missing)} (found: {found}{hint})"
        )
    index = {
        ours: header.index(layout.column(ours))
        for ours in (*required, *optional)
        if layout.column(ours) in header
    }
    for line, values, unreadable in rows:
        if unreadable is not None:
            yield InputLine(line, original_bytes(values, layout.delimiter), unreadable)
            continue
        if not any(v.strip() for v in values):
            continue
        row = {ours: values[i] if i < len(values) else "" for ours, i in index.items()}
        try:
            yield InputLine(line, orjson.dumps(to_event(row, layout, zone)))
        except ValueError as error:
            yield InputLine(line, original_bytes(values, layout.delimiter), f"line {line}: {error}")


def _zone(name: str | None) -> tzinfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputFormatError(f"--timezone: unknown time zone `{name}` (e.g. Europe/Berlin, UTC)") from None


def csv_row_event(
    row: dict[str, str], layout: CsvLayout | None = None, zone: tzinfo | None = None
) -> dict[str, object]:
    """One CSV row as an order event. Rows without event_id get one derived from the order,
    so sending the same export twice counts nothing twice. Errors name the file's column."""
    layout = layout or CsvLayout()
    kind = (row.get("type") or "order.placed").strip()
    order_id = row["order_id"].strip()
    occurred_at = _csv_instant(row["occurred_at"], layout.column("occurred_at"), zone)
    event: dict[str, object] = {
        "type": kind,
        "event_id": row.get("event_id") or f"csv:{kind}:{order_id}:{row['occurred_at']}",
        "customer_id": row["customer_id"].strip(),
        "occurred_at": occurred_at,
        "order_id": order_id,
    }
    if kind in ("order.placed", "order.refunded"):
        currency = row["currency"].strip().upper()
        amount = row["amount"].strip()
        if layout.decimal_comma:
            amount = amount.replace(".", "").replace(",", ".")
        try:
            minor = to_minor_units(amount, currency)
        except ValueError as error:
            raise ValueError(f"column `{layout.column('amount')}`: {error}") from None
        money = {"amount_minor": minor, "currency": currency}
        event["total" if kind == "order.placed" else "amount"] = money
    if kind == "order.placed":
        for column in ("store_id", "channel", "payment_method", "coupon"):
            if row.get(column):
                event[column] = row[column]
    return event


def signup_row_event(
    row: dict[str, str], layout: CsvLayout | None = None, zone: tzinfo | None = None
) -> dict[str, object]:
    """One CSV row as a sign-up. Rows without event_id get one derived from the customer and
    the time, so sending the same export twice signs no one up twice."""
    layout = layout or CsvLayout()
    customer_id = row["customer_id"].strip()
    occurred_at = _csv_instant(row["occurred_at"], layout.column("occurred_at"), zone)
    event: dict[str, object] = {
        "type": "customer.signed_up",
        "event_id": row.get("event_id") or f"csv:customer.signed_up:{customer_id}:{row['occurred_at']}",
        "customer_id": customer_id,
        "occurred_at": occurred_at,
    }
    for column in ("email", "source"):
        if row.get(column, "").strip():
            event[column] = row[column].strip()
    consent = row.get("accepts_marketing", "").strip().lower()
    if consent in _YES or consent in _NO:
        event["accepts_marketing"] = consent in _YES
    elif consent:
        raise ValueError(
            f"column `{layout.column('accepts_marketing')}`: expected yes or no (true/false, 1/0), "
            f"got `{shown(row['accepts_marketing'])}`"
        )
    return event


def _csv_instant(text: str, column: str, zone: tzinfo | None) -> str:
    """RFC 3339, or `2025-01-10 09:14:55` in `zone`; always with a zone in the event."""
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"column `{column}`: expected a time like 2025-01-10T09:14:55Z, got `{text}`"
        ) from None
    if instant.tzinfo is None:
        if zone is None:
            raise ValueError(f"column `{column}`: the time `{text}` has no zone; add one, or give --timezone")
        instant = instant.replace(tzinfo=zone)
    return instant.isoformat()
