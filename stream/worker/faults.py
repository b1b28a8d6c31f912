"""Faults injected for tests, installed once at start: the worker's hot loop never asks.

Set by the real-broker tests through the environment of a worker they start:

- LIFECYCLE_FAULT_DROP_ORDERS="0:5,1:7": the worker ignores those (partition, offset)
  messages of the orders topic once, the way faust loses a message around a rebalance
  (docs/field-notes.md);
- LIFECYCLE_FAULT_FAIL_ORDERS: handling those messages raises;
- LIFECYCLE_FAULT_SKIP_FETCHED: faust's consumer passes over those messages once, as
  fetched, and records the offsets passed over as a gap;
- LIFECYCLE_FAULT_EXIT_AT_COMMIT="3": in exactly-once mode, the process ends (exit 75) as
  the third transaction to commit is about to send its offsets: its outputs, store writes
  and changelog records are out, the transaction is not committed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from .commit_protocol import CommitProtocol, Transactions
from .faust_internals.consumer import skip_fetched_once

Process = Callable[[Any], "int | None"]


def install_faults(
    app: Any,
    orders_topic: str,
    protocol: CommitProtocol,
    process: Process,
    environ: Mapping[str, str] = os.environ,
) -> Process:
    """`process`, behind the faults the environment names (itself when it names none)."""
    skip_fetched_once(app.consumer, orders_topic, _fault_orders(environ, "LIFECYCLE_FAULT_SKIP_FETCHED"))
    dropped_once = _fault_orders(environ, "LIFECYCLE_FAULT_DROP_ORDERS")
    failing = _fault_orders(environ, "LIFECYCLE_FAULT_FAIL_ORDERS")
    if not dropped_once and not failing:
        return process

    def with_faults(message: Any) -> int | None:
        where = (message.partition, message.offset)
        if where in dropped_once:
            dropped_once.discard(where)
            protocol.refuse(message)  # as if faust had lost it on its way
            return None
        if where in failing:
            raise RuntimeError("fault injected for tests (LIFECYCLE_FAULT_FAIL_ORDERS)")
        return process(message)

    return with_faults


# sysexits' EX_TEMPFAIL: a fault of the tests, not a failure of the worker
EXIT_FAULT = 75


def install_transaction_faults(transactions: Transactions, environ: Mapping[str, str] = os.environ) -> None:
    at = int(environ.get("LIFECYCLE_FAULT_EXIT_AT_COMMIT", "0"))
    if at <= 0:
        return
    commits = 0

    def exit_at_commit(number: int) -> None:
        nonlocal commits
        commits += 1
        if commits >= at:
            os._exit(EXIT_FAULT)

    transactions.before_commit = exit_at_commit


def _fault_orders(environ: Mapping[str, str], variable: str) -> set[tuple[int, int]]:
    """The (partition, offset) pairs of "0:5,1:7"."""
    found = set()
    for item in filter(None, environ.get(variable, "").split(",")):
        partition, _, offset = item.partition(":")
        found.add((int(partition), int(offset)))
    return found
