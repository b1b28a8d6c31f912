"""What the subcommands share: the usage error, and turning arguments into values."""

from __future__ import annotations

import os
import sys
from typing import Any, BinaryIO

from ..lifecycle.instants import parse_rfc3339
from ..wallclock import wall_clock_us


class UsageError(Exception):
    """Unusable arguments or unreadable files: exit 2 with a one-line message."""


def instant_argument(option: str, text: str) -> int:
    """An RFC 3339 instant, or `now` (the wall clock)."""
    if text.strip().lower() == "now":
        return wall_clock_us()
    try:
        return parse_rfc3339(text)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None


def check_readable(paths: list[str]) -> None:
    for path in paths:
        if path != "-" and not os.access(path, os.R_OK):
            reason = "no such file" if not os.path.exists(path) else "not readable"
            raise UsageError(f"input {path}: {reason}")


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
    return UsageError(
        f"cannot reach Kafka at {config.kafka.bootstrap_servers} (kafka.bootstrap_servers): {error!r}"
    )
