"""The `lifecycle` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import NoReturn

from ..config import ConfigError
from ..inputs.csv_text import InputFormatError
from ..replay.run import ReplayError
from . import (
    check_command,
    explain_command,
    export_command,
    feed_command,
    generate_command,
    kafka_commands,
    model_command,
    rebuild_command,
    replay_command,
    report_command,
    schemas_command,
    send_command,
    tail_command,
    what_if_command,
    worker_command,
)
from .common import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lifecycle", description="Customer lifecycle engine for online shops.")
    parser.add_argument("--version", action="version", version=f"lifecycle {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in (
        replay_command,
        report_command,
        model_command,
        check_command,
        explain_command,
        export_command,
        generate_command,
        schemas_command,
        kafka_commands,
        worker_command,
        send_command,
        rebuild_command,
        tail_command,
        feed_command,
        what_if_command,
    ):
        module.register(commands)
    return parser


def _version() -> str:
    try:
        return metadata.version("lifecycle-engine")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments:
        build_parser().print_help(sys.stderr)
        return 2
    try:
        args = build_parser().parse_args(arguments)
        return int(args.run(args))
    except (UsageError, ConfigError, InputFormatError, ReplayError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); not an error of ours.
        sys.stderr.close()
        return 0


def console() -> NoReturn:
    """The `lifecycle` command: `main`, then an exit that does not free the heap first."""
    code = main()
    # A replay ends holding millions of small objects; freeing them one by one at interpreter
    # exit costs as much as a twentieth of a large replay. Every command has flushed and
    # closed its outputs by now.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(ValueError, OSError):  # closed, or a reader that went away
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
