"""One readable line per transition, for people watching a terminal (`lifecycle tail`, the demo).

python -m stream.display < transitions.jsonl
"""

from __future__ import annotations

import sys
from typing import Any

import orjson


def transition_line(transition: dict[str, Any]) -> str:
    customer = transition.get("customer") or {}
    spend = ", ".join(f"{amount / 100:.2f} {cur}" for cur, amount in (customer.get("spend") or {}).items())
    flag = " (replayed)" if transition.get("replayed") else ""
    return (
        f"{transition['occurred_at']:<27} {transition['customer_id']:>16}  "
        f"{transition['transition']:<22} {transition['from_state']:>9} -> {transition['to_state']:<9} "
        f"orders={customer.get('order_count', 0)} spend={spend or '0'}{flag}"
    )


def main() -> None:
    try:
        for line in sys.stdin.buffer:
            print(transition_line(orjson.loads(line)), flush=True)
    except BrokenPipeError:
        pass


if __name__ == "__main__":
    main()
