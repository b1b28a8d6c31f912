"""JSON Schemas of every message, generated from the types that encode and decode them.

`lifecycle schemas` writes them to `schemas/v1/`; `lifecycle schemas --check` (and a test)
fails when the committed files and the types have drifted apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import orjson

from ..lifecycle import OrderEvent, Transition
from ..lifecycle.transitions import SegmentChange, TriggerFired
from .messages import CustomerRecord, Rejection, Tick

VERSION = "v1"
MESSAGES: dict[str, tuple[Any, str]] = {
    "order-event": (OrderEvent, "An order event: the engine's input, keyed by customer_id."),
    "transition": (Transition, "A change of a customer's lifecycle state."),
    "segment-change": (SegmentChange, "A customer entering or leaving a segment, or changing class."),
    "trigger-fired": (TriggerFired, "A trigger fired: its `on` happened and no `unless` followed in time."),
    "customer-state": (CustomerRecord, "A customer's latest lifecycle state (compacted topic)."),
    "rejection": (Rejection, "Input that was not applied (dead letter or replay reject)."),
    "tick": (Tick, "Wall-clock time for one partition (internal ticks topic)."),
}


def generated_schemas() -> dict[str, bytes]:
    """File name → JSON Schema text, for every message type."""
    files = {}
    for name, (message_type, description) in MESSAGES.items():
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"lifecycle/{VERSION}/{name}.json",
            "description": description,
            **msgspec.json.schema(message_type),
        }
        files[f"{name}.json"] = orjson.dumps(schema, option=orjson.OPT_INDENT_2) + b"\n"
    return files


def schema_dir(root: Path | None = None) -> Path:
    return (root or Path(__file__).resolve().parents[2]) / "schemas" / VERSION


def drifted(directory: Path) -> list[str]:
    """Files in `directory` that differ from the generated schemas (or are missing)."""
    stale = []
    for name, text in generated_schemas().items():
        path = directory / name
        if not path.exists() or path.read_bytes() != text:
            stale.append(name)
    return stale


def load_schema(name: str, directory: Path | None = None) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads((directory or schema_dir()).joinpath(f"{name}.json").read_bytes())
    return result
