"""What the subcommands share: the usage error, and turning arguments into values."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO, overload

from ..inputs import sources
from ..inputs.csv_text import InputFormatError, checked_encoding
from ..inputs.files import CSV_OPTIONAL, CSV_REQUIRED, SIGNUP_OPTIONAL, SIGNUP_REQUIRED, CsvLayout
from ..inputs.sources import FORMATS, InputFiles
from ..inputs.time_order import SourcedLine
from ..lifecycle.instants import parse_rfc3339
from ..replay.run import ReplayOptions
from ..wallclock import wall_clock_us


class UsageError(Exception):
    """Unusable arguments or unreadable files: exit 2 with a one-line message."""


def instant_argument(option: str, text: str) -> int:
    """An RFC 3339 instant, a date (its 00:00 UTC), or `now` (the wall clock)."""
    if text.strip().lower() == "now":
        return wall_clock_us()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        text = f"{text.strip()}T00:00:00Z"
    try:
        return parse_rfc3339(text)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None


def check_readable(paths: list[str]) -> None:
    for path in paths:
        if path != "-" and not os.access(path, os.R_OK):
            reason = "no such file" if not os.path.exists(path) else "not readable"
            raise UsageError(f"input {path}: {reason}")


@overload
def open_output(option: str, path: str) -> BinaryIO: ...


@overload
def open_output(option: str, path: str | None) -> BinaryIO | None: ...


def open_output(option: str, path: str | None) -> BinaryIO | None:
    """A binary output file (`-` is stdout), or None when the option was not given."""
    if path is None:
        return None
    if path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "wb")
    except OSError as error:
        raise UsageError(f"{option} {path}: {error.strerror}") from None


def unreachable(config: Any, error: BaseException) -> UsageError:
    """The one-line error for a Kafka cluster a command could not reach or use."""
    tls = (
        "; with TLS, check kafka.ssl_cafile and the client certificate"
        if "SSL" in config.kafka.security_protocol
        else ""
    )
    return UsageError(
        f"cannot reach Kafka at {config.kafka.bootstrap_servers} (kafka.bootstrap_servers{tls}): {error!r}"
    )


def add_input_options(parser: Any) -> None:
    """The options that say how input files are laid out, shared by the commands that read them."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="jsonl",
        help="jsonl (default), csv (a flat order export), shopify (Shopify's orders export), "
        "signups (a CSV of sign-ups: customer_id, occurred_at, optional email, accepts_marketing, "
        "source, event_id)",
    )
    parser.add_argument(
        "--columns",
        metavar="OURS=THEIRS,...",
        help="CSV: the file's column for each of ours, e.g. customer_id=Kunde,amount=Betrag",
    )
    parser.add_argument("--delimiter", default=",", help="CSV: the field delimiter (default ,)")
    parser.add_argument("--decimal-comma", action="store_true", help="CSV: amounts are written 1.234,50")
    parser.add_argument(
        "--timezone",
        metavar="ZONE",
        help="CSV: the zone of timestamps written without one, e.g. Europe/Berlin",
    )
    parser.add_argument(
        "--encoding",
        default="utf-8",
        help="csv, shopify: the file's text encoding: utf-8 (default, with or without a byte order "
        "mark), cp1252 (Excel on Windows), latin-1, utf-16 …",
    )


def input_layout(args: Any) -> CsvLayout:
    columns: dict[str, str] = {}
    for pair in filter(None, (args.columns or "").split(",")):
        ours, sep, theirs = pair.partition("=")
        columns_known = dict.fromkeys((*CSV_REQUIRED, *CSV_OPTIONAL, *SIGNUP_REQUIRED, *SIGNUP_OPTIONAL))
        if not sep or ours.strip() not in columns_known or not theirs.strip():
            known = ", ".join(columns_known)
            raise UsageError(f"--columns: expected OURS=THEIRS pairs with OURS one of {known}; got `{pair}`")
        columns[ours.strip()] = theirs.strip()
    delimiter = "\t" if args.delimiter in ("\\t", "tab") else args.delimiter
    if len(delimiter) != 1:
        raise UsageError(f"--delimiter: expected one character, got `{args.delimiter}`")
    try:
        checked_encoding(args.encoding)
    except InputFormatError as error:
        raise UsageError(str(error)) from None
    return CsvLayout(columns, delimiter, args.decimal_comma, args.timezone, args.encoding)


def input_files(args: Any) -> InputFiles:
    """The input files and how they are laid out, as the command's options say."""
    return InputFiles(list(args.inputs), args.format, input_layout(args))


def read_inputs(args: Any, progress: Any = None) -> Iterator[SourcedLine]:
    """Every line of the command's input files, tagged with its file; a file that cannot be
    read or is not of its format stops the command (InputFormatError: exit 2)."""
    return sources.read_inputs(input_files(args), progress)


def replay_options(args: Any, until: int | None) -> ReplayOptions:
    """What a replaying command (replay, report, model) replays, as its options say."""
    return ReplayOptions(input_files(args), args.arrival_order, until)


def add_jobs_option(parser: argparse.ArgumentParser, doing: str) -> None:
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help=f"processes, each {doing} a share of the partitions (default: the machine's cores)",
    )


def add_memory_option(parser: argparse.ArgumentParser, doing: str) -> None:
    parser.add_argument(
        "--memory",
        metavar="LIMIT",
        help=f"the most memory {doing} may use, like 2G or 512M (default: half of the machine's); "
        "beyond it the partitions are done in groups, one after another, with the same result",
    )


def memory_budget(args: argparse.Namespace) -> int:
    from ..replay.memory import default_budget, parse_memory

    if args.memory is None:
        return default_budget()
    try:
        return parse_memory(args.memory)
    except ValueError as error:
        raise UsageError(f"--memory: {error}") from None


def checked_jobs(args: argparse.Namespace, partitions: int) -> int:
    """--jobs, checked, and no more than there are partitions to share."""
    if args.jobs < 1:
        raise UsageError(f"--jobs: expected 1 or more, got {args.jobs}")
    jobs: int = args.jobs
    return min(jobs, partitions)


def add_arrival_order_option(parser: argparse.ArgumentParser, doing: str) -> None:
    """--arrival-order: input lines in the files' order, not sorted by occurred_at."""
    parser.add_argument(
        "--arrival-order",
        action="store_true",
        help=f"{doing} lines in the files' order (default: in occurred_at order, ties in file order)",
    )
