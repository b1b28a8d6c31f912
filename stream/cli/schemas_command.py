"""`lifecycle schemas`: write or check the JSON Schemas in schemas/v1/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..inputs.schemas import drifted, generated_schemas, schema_dir


def register(commands: Any) -> None:
    parser = commands.add_parser("schemas", help="write or check the message JSON Schemas")
    parser.add_argument("--dir", type=Path, default=None, help="default: schemas/v1 of the project")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files have drifted")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    directory = args.dir or schema_dir()
    if args.check:
        stale = drifted(directory)
        for name in stale:
            print(f"{directory / name}: differs from the types; run `lifecycle schemas`", file=sys.stderr)
        return 1 if stale else 0
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in generated_schemas().items():
        (directory / name).write_bytes(text)
        print(directory / name)
    return 0
