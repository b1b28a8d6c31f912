"""CSV files as rows of text, whatever their bytes: a row, or a row rejected with the reason.

Shops' exports come in the encoding of whatever saved them last: Excel on Windows writes
Windows-1252 (`cp1252`), some tools UTF-16 with a byte order mark, most UTF-8 with or
without one. Bytes that are not valid in the file's encoding make only their row a
rejection, naming the line and the byte and suggesting `--encoding`; the rest of the file
goes on. So does a row the CSV parser gives up on (a field over its 128 KiB limit, as a
quote never closed makes). Only a header that cannot be read stops the command.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from typing import Any, BinaryIO, NamedTuple

ENCODINGS_HINT = "utf-8, cp1252 (Excel on Windows), latin-1, utf-16"


class CsvRow(NamedTuple):
    line: int  # the line the row ends on
    values: list[str]
    error: str | None = None  # why the row cannot be read; `values` may then be partial


class InputFormatError(ValueError):
    """An input that is not of its format at all (a header that cannot be read, or without a
    required column): the command stops with this one line, naming what to fix."""


def checked_encoding(name: str) -> str:
    """The codec to read a file named `name` with; `utf-8` skips a byte order mark too."""
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise InputFormatError(f"--encoding: unknown encoding `{name}` (e.g. {ENCODINGS_HINT})") from None
    return "utf-8-sig" if codec == "utf-8" else codec


def csv_rows(
    stream: BinaryIO, encoding: str = "utf-8", delimiter: str = ","
) -> tuple[list[str], Iterator[CsvRow]]:
    """The header row and an iterator over the rows after it."""
    codec = checked_encoding(encoding)
    # undecodable bytes become lone surrogates U+DC80..U+DCFF, which no valid decoding
    # produces: a row holding one is told apart, and its bytes are known again
    text = io.TextIOWrapper(stream, encoding=codec, errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    header = next(_rows(reader, encoding), None)
    if header is None:
        return [], iter(())
    if header.error is not None:
        raise InputFormatError(f"the header: {header.error}")
    return header.values, _rows(reader, encoding)


def _rows(reader: Any, encoding: str) -> Iterator[CsvRow]:
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:  # the reader starts afresh on the next line
            yield CsvRow(reader.line_num, [], f"line {reader.line_num}: not a CSV row: {error}")
            continue
        except UnicodeError as error:
            # not a byte the decoder could escape but the decoder itself giving up (UTF-16
            # without a byte order mark): it would give up again on every read
            yield CsvRow(
                reader.line_num + 1,
                [],
                f"line {reader.line_num + 1}: the rest of the file cannot be read as {encoding}: {error}; "
                f"say its encoding with --encoding (e.g. utf-16-le for UTF-16 without a byte order mark)",
            )
            return
        yield CsvRow(reader.line_num, values, undecodable(values, reader.line_num, encoding))


def undecodable(values: list[str], line: int, encoding: str) -> str | None:
    """Why a row's values hold bytes not valid in `encoding`, or None when they hold none."""
    for column, value in enumerate(values, start=1):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            byte = ord(value[error.start]) - 0xDC00
            return (
                f"line {line}: byte 0x{byte:02X} in field {column} is not valid {encoding}; "
                f"if the file is in another encoding, say which with --encoding (e.g. {ENCODINGS_HINT})"
            )
    return None


def original_bytes(values: list[str], delimiter: str) -> bytes:
    """A row's text as bytes, the undecodable bytes as they were: what a rejection carries."""
    return delimiter.join(values).encode("utf-8", "surrogateescape")


def shown(text: str) -> str:
    """Text for a message: an undecodable byte shown as `\\xNN`, not one that cannot be printed."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
