"""What tests share: builders of order events written as a shop would send them, and the
`lifecycle` command run in the test's own process."""

from __future__ import annotations

import io
import itertools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from stream.inputs.messages import decode_event
from stream.lifecycle import OrderEvent, Partition, PolicyBook, TimeRules, Transition
from stream.lifecycle.instants import DAY_US, format_rfc3339, parse_rfc3339

T0 = parse_rfc3339("2025-03-01T10:00:00Z")
NOW = parse_rfc3339("2031-01-01T00:00:00Z")
_ids = itertools.count(1)


def at(days: float = 0, us: int = 0) -> int:
    return T0 + int(days * DAY_US) + us


def _event(kind: str, customer: str, when: int, event_id: str | None, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": event_id or f"ev{next(_ids)}",
        "customer_id": customer,
        "occurred_at": format_rfc3339(when),
        **fields,
    }


def placed(
    customer: str,
    order: str,
    when: int,
    amount: int = 1000,
    currency: str = "EUR",
    event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return _event(
        "order.placed",
        customer,
        when,
        event_id,
        order_id=order,
        total={"amount_minor": amount, "currency": currency},
        **extra,
    )


def cancelled(customer: str, order: str, when: int, event_id: str | None = None) -> dict[str, Any]:
    return _event("order.cancelled", customer, when, event_id, order_id=order)


def refunded(
    customer: str, order: str, when: int, amount: int, currency: str = "EUR", event_id: str | None = None
) -> dict[str, Any]:
    return _event(
        "order.refunded",
        customer,
        when,
        event_id,
        order_id=order,
        amount={"amount_minor": amount, "currency": currency},
    )


def erased(customer: str, when: int, event_id: str | None = None) -> dict[str, Any]:
    return _event("customer.erased", customer, when, event_id)


def signed_up(customer: str, when: int, event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return _event("customer.signed_up", customer, when, event_id, **fields)


def engaged(
    customer: str, kind: str, when: int, event_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    return {**_event("customer.engaged", customer, when, event_id, **fields), "kind": kind}


def decoded(event: dict[str, Any]) -> OrderEvent:
    return decode_event(orjson.dumps(event))


def new_partition(
    policies: PolicyBook | None = None, rules: TimeRules | None = None, rebuilding: bool = False
) -> Partition:
    return Partition({}, policies, rules, rebuilding=rebuilding)


def apply_all(partition: Partition, events: list[dict[str, Any]], now: int = NOW) -> list[Transition]:
    out: list[Transition] = []
    for event in events:
        out.extend(partition.apply(decoded(event), now).changes)
    return out


def names(transitions: list[Transition]) -> list[str]:
    return [t.transition for t in transitions]


DATA = Path(__file__).parent / "data"


def cdnow_events(path: Path) -> Path:
    """CDNOW's sample (2,357 customers of 1997's first quarter, their orders to mid-1998) as
    order events: one order a line, dated at 00:00 UTC, amounts in USD."""
    with path.open("wb") as out:
        for number, line in enumerate((DATA / "cdnow" / "CDNOW_sample.txt").read_text().splitlines()):
            _, customer, day, _, amount = line.split()
            out.write(
                orjson.dumps(
                    {
                        "type": "order.placed",
                        "event_id": f"e{number}",
                        "customer_id": customer,
                        "occurred_at": f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:00Z",
                        "order_id": f"o{number}",
                        "total": {"amount_minor": round(float(amount) * 100), "currency": "USD"},
                    }
                )
                + b"\n"
            )
    return path


# a model document of known parameters, as `lifecycle model fit` writes one
MODEL: dict[str, Any] = {
    "bgnbd": {"r": 0.4, "alpha": 3.0, "a": 0.8, "b": 2.0},
    "mbgnbd": {"r": 0.5, "alpha": 2.0, "a": 1.5, "b": 3.0},
    "gamma_gamma": {"p": 6.0, "q": 4.0, "v": 15.0},
    "time_unit": "week",
    "currency": "EUR",
}


# -- the `lifecycle` command, run in this process ------------------------------------------


class Ran(NamedTuple):
    """What a command left: its exit code, and what it wrote to stdout and stderr."""

    returncode: int
    stdout: bytes
    stderr: bytes


class _Kept(io.BytesIO):
    def close(self) -> None:  # a command closing its stdout leaves what it wrote readable
        pass


def run_cli(*args: str, stdin: bytes | None = None) -> Ran:
    """`lifecycle *args` in this process (no interpreter to start), stdin fed from `stdin`."""
    from stream.cli import main

    out, err = _Kept(), _Kept()
    streams = (
        io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        io.TextIOWrapper(err, encoding="utf-8", write_through=True),
    )
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        try:
            code = main(list(args))
        except SystemExit as stop:  # argparse's --version
            code = stop.code if isinstance(stop.code, int) else 0
        for stream in streams[1:]:
            stream.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return Ran(code, out.getvalue(), err.getvalue())


class RanText(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def lifecycle(*args: str) -> RanText:
    """`run_cli`, its outputs as text."""
    ran = run_cli(*args)
    return RanText(ran.returncode, ran.stdout.decode(), ran.stderr.decode())


def run_replay(*args: str, stdin: bytes | None = None) -> Ran:
    return run_cli("replay", *args, stdin=stdin)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def write_events(path: Path, events: list[dict[str, Any]], extra_lines: Sequence[bytes] = ()) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events) + b"".join(extra_lines))
    return path


# -- a page in a real browser (Debian's chromium, headless) --------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_dom(page: Path, profile: Path) -> str:
    """The DOM of `page` as headless Chromium built it; fails on any console message."""
    import shutil
    import subprocess

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (scripts/test-tools installs it)"
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "CONSOLE" not in dom.stderr, dom.stderr  # no console message at all, errors included
    return dom.stdout
