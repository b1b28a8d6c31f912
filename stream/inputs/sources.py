"""Order history files as one stream of lines, whatever their format: what replay, check,
explain and send read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .csv_text import InputFormatError
from .files import CsvLayout, InputLine, csv_lines, jsonl_lines, open_input, signup_lines
from .shopify import shopify_lines
from .time_order import SourcedLine

FORMATS = ("jsonl", "csv", "shopify", "signups")


class UnreadableInput(InputFormatError):
    """An input file that cannot be opened or read, or is not of its format: the message
    names the file."""


@dataclass(frozen=True)
class InputFiles:
    """The files to read (`-` is stdin, `.gz` is decompressed), their format and layout."""

    paths: list[str]
    input_format: str = "jsonl"
    layout: CsvLayout = field(default_factory=CsvLayout)


def format_lines(stream: BinaryIO, input_format: str, layout: CsvLayout | None = None) -> Iterator[InputLine]:
    """The lines of an input in one of FORMATS."""
    if input_format == "csv":
        return csv_lines(stream, layout)
    if input_format == "signups":
        return signup_lines(stream, layout)
    if input_format == "shopify":
        return shopify_lines(stream, (layout or CsvLayout()).encoding)
    return jsonl_lines(stream)


def read_inputs(inputs: InputFiles, progress: Any = None) -> Iterator[SourcedLine]:
    """Every line of the files, tagged with its file; `progress.update(bytes)` is told of
    each. A file that cannot be read, or is not of its format, raises UnreadableInput."""
    for path in inputs.paths:
        try:
            stream = open_input(path)
        except OSError as error:
            raise UnreadableInput(f"input {path}: {error.strerror}") from None
        try:
            for line in format_lines(stream, inputs.input_format, inputs.layout):
                if progress is not None:
                    progress.update(len(line.raw) + 1)
                yield SourcedLine(path, line)
        except InputFormatError as error:
            raise UnreadableInput(f"input {path}: {error}") from None
        except (OSError, EOFError) as error:  # a .gz file that is not gzip, or cut short
            raise UnreadableInput(f"input {path}: cannot be read: {error}") from None
